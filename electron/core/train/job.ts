// A whole fine-tuning run, top to bottom: plan the stages, pack and deploy them, initialise LoRA, evaluate, train
// with 1F1B through the pipeline, evaluate again, export the adapter and record everything in the run folder.
// Device discovery and transport are injected (a StageDeployer), so the same job runs over adb or local agents.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrainEvent, TrainPlan } from '../api/types.js';
import { openModel, type ModelFolder } from '../model/model-folder.js';
import { packStage } from '../model/stage-pack.js';
import type { WeightFormat } from '../model/quantize.js';
import { loadModelTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import type { NamedTensor } from '../protocol/messages.js';
import { partitionLayers, type PlanDevice, type PlannedStage } from '../plan/partition.js';
import type { DeployedAgent, StageDeployer } from '../deploy/stage-deployer.js';
import { exportPeft } from '../export/peft.js';
import { loadTrainingData, type DatasetOptions } from './training-data.js';
import { collateBatch, epochOrder, type TrainingSample } from '../data/samples.js';
import { initialLora } from './lora-init.js';
import { targetMask, LORA_MODULES, type LoraModule } from './lora-modules.js';
import { learningRate } from './lr-schedule.js';
import { runPass, optimizerStep, type MicroBatch, type StageHandle } from './pipeline.js';
import { generateText } from './generate.js';
import { RunFolder } from './run-folder.js';
import { ortHeldOutLoss, type OrtHeldOutLoss } from './ort-eval.js';

export interface TrainJobOptions {
  modelDir: string;
  datasetPath: string;
  runsDir: string;
  /** Scratch folder for packed stage files. */
  cacheDir: string;
  devices: PlanDevice[];
  deployer: StageDeployer;
  steps: number;
  microBatches: number;
  microBatchSize: number;
  seqLen: number;
  loraRank: number;
  loraAlpha: number;
  loraModules: readonly LoraModule[];
  /**
   * Storage format of the frozen base weights on the phones (stage-pack.ts): f32, f16, int8, or the 4-bit q4_0 /
   * fp4, quantised once here and read in place by the agent. LoRA and its gradients stay f32.
   */
  weightFormat: WeightFormat;
  peakLr: number;
  warmupSteps: number;
  maxGradNorm: number;
  weightDecay: number;
  seed: number;
  /** Held-out fraction of the dataset and how many held-out sequences to evaluate. */
  validationFraction: number;
  evalSequences: number;
  /** How to read the dataset file (format, columns, skipping bad rows); default: detected, bad rows refused. */
  dataset?: DatasetOptions;
  /** Prompts generated (greedy) before and after training, to show what changed. */
  samplePrompts: readonly string[];
  sampleTokens: number;
  onEvent?: (e: TrainEvent) => void;
  signal?: AbortSignal;
}

export interface TrainJobResult {
  runId: string;
  runDir: string;
  adapterDir: string;
  losses: number[];
  evalLossBefore: number;
  evalLossAfter: number;
  /** The same two held-out losses recomputed by onnxruntime from the exported adapter, or why that failed. */
  heldOutLossOrt: OrtHeldOutLoss | { error: string };
  samplesBefore: string[];
  samplesAfter: string[];
  tokPerSec: number;
  plan: TrainPlan;
}

/** Sensible defaults for the bundled tiny model; every field can be overridden. */
export const DEFAULT_TRAIN_SETTINGS = {
  steps: 40,
  microBatches: 4,
  microBatchSize: 4,
  seqLen: 64,
  loraRank: 8,
  loraAlpha: 16,
  loraModules: LORA_MODULES,
  weightFormat: 'f32',
  // Swept on the demo (12 steps, lr 3e-3 / 5e-3 / 1e-2): 3e-3 gave the lowest held-out loss.
  peakLr: 3e-3,
  warmupSteps: 2,
  maxGradNorm: 1,
  weightDecay: 0,
  seed: 1234,
  validationFraction: 0.1,
  evalSequences: 32,
  samplePrompts: ['Once upon a time, there was a little girl named'],
  sampleTokens: 24,
} as const;

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function evaluate(stages: StageHandle[], micros: MicroBatch[]): Promise<number> {
  const pass = await runPass(stages, micros, { train: false });
  return pass.lossSum / pass.weightSum;
}

async function deployStages(o: TrainJobOptions, folder: ModelFolder, planned: PlannedStage[], emit: (e: TrainEvent) => void, runId: string, agents: DeployedAgent[]): Promise<void> {
  await mkdir(o.cacheDir, { recursive: true });
  // One failed phone cancels the other pushes (no point finishing a GiB for a run that cannot start), and every
  // deployment is waited for, so each agent that did start is in `agents` for the caller to stop.
  const siblings = new AbortController();
  const onOuterAbort = () => siblings.abort();
  o.signal?.addEventListener('abort', onOuterAbort, { once: true });
  if (o.signal?.aborted) siblings.abort();
  const settled = await Promise.allSettled(
    planned.map(async (st, s) => {
      try {
        const stageFile = join(o.cacheDir, `${runId}-stage${s}-layers${st.layerStart}-${st.layerEnd}.cfst`);
        const packed = await packStage(folder, st, stageFile, { weightFormat: o.weightFormat });
        if (packed.fallbacks.length) emit({ type: 'phase', runId, phase: 'deploy', detail: `${st.serial}: ${packed.fallbacks.length} matrices kept as f16 (${packed.fallbacks[0]!.reason})`, timeMs: Date.now() });
        if (siblings.signal.aborted) throw new Error(`deployment to ${st.serial} was cancelled`);
        const agent = await o.deployer.deploy(st.serial, stageFile, {
          memoryBudgetBytes: o.devices[s].budgetBytes,
          signal: siblings.signal,
          onProgress: (p) => {
            if (p.phase === 'skipped') {
              emit({ type: 'phase', runId, phase: 'deploy', detail: `${st.serial}: ${p.file} is already on the phone (same sha256), not pushed again`, timeMs: Date.now() });
            }
            emit({ type: 'push-progress', runId, serial: st.serial, file: p.file, bytesSent: p.bytesSent, bytesTotal: p.bytesTotal,
              bytesPerSec: p.bytesPerSec, etaMs: p.etaMs, phase: p.phase, attempt: p.attempt, resumedFromBytes: p.resumedFromBytes, timeMs: Date.now() });
          },
        });
        agents.push(agent);
        const loaded = await agent.client.loadStage({ path: agent.stagePath, loraRank: o.loraRank, loraAlpha: o.loraAlpha, targetMask: targetMask(o.loraModules), flags: 0 });
        if (loaded.layerStart !== st.layerStart || loaded.layerEnd !== st.layerEnd) {
          throw new Error(`${st.serial} loaded layers [${loaded.layerStart}, ${loaded.layerEnd}) but the plan says [${st.layerStart}, ${st.layerEnd})`);
        }
        await agent.client.setLora(initialLora(folder.config, st.layerStart, st.layerEnd, o.loraRank, o.loraModules, o.seed));
      } catch (e) {
        siblings.abort();
        throw e;
      }
    }),
  );
  o.signal?.removeEventListener('abort', onOuterAbort);
  // The first real failure, not the cancellations it caused in the other deployments.
  const failures = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Error);
  if (failures.length) throw failures.find((e) => !/cancelled/.test(e?.message ?? '')) ?? failures[0];
}

/** After a failure: the error plus what a failed device can tell (its agent log), when it can still be asked. */
async function explainFailure(e: unknown, agents: DeployedAgent[]): Promise<string> {
  let error = (e as Error)?.message ?? String(e);
  const failed = agents.filter((a) => !a.client.isOpen && a.diagnose && error.includes(a.serial));
  for (const a of failed) {
    const said = await Promise.race([
      a.diagnose!().catch(() => ''),
      new Promise<string>((r) => setTimeout(() => r(''), 3000).unref()),
    ]);
    if (said) error += `\n${said}`;
  }
  return error;
}

export async function runTrainJob(o: TrainJobOptions): Promise<TrainJobResult> {
  const folder = await openModel(o.modelDir);
  const tok: TextTokenizer = await loadModelTokenizer(folder);
  const data = await loadTrainingData(o.datasetPath, tok, { seqLen: o.seqLen, validationFraction: o.validationFraction, seed: o.seed, modelDir: o.modelDir, dataset: o.dataset });
  const stepSamples = o.microBatches * o.microBatchSize;
  if (data.train.length < stepSamples) {
    throw new Error(`${o.datasetPath} gives ${data.train.length} training sequences of ${o.seqLen} tokens; one step needs ${stepSamples}`);
  }
  const planned = partitionLayers(folder.config, o.devices, { loraRank: o.loraRank, microBatchSize: o.microBatchSize, seqLen: o.seqLen, weightFormat: o.weightFormat });
  const plan: TrainPlan = { stages: planned, microBatches: o.microBatches, microBatchSize: o.microBatchSize, seqLen: o.seqLen };

  const run = await RunFolder.create(o.runsDir);
  const emit = (e: TrainEvent) => {
    o.onEvent?.(e);
    void run.appendEvent(e);
  };
  const summary: Record<string, unknown> = {
    runId: run.runId,
    status: 'running',
    model: { dir: o.modelDir, type: folder.config.modelType, layers: folder.config.numLayers, hiddenSize: folder.config.hiddenSize },
    dataset: { path: o.datasetPath, trainSequences: data.train.length, validationSequences: data.validation.length },
    transport: o.deployer.description,
    plan,
    settings: { ...o, devices: undefined, deployer: undefined, onEvent: undefined, signal: undefined },
    losses: [] as number[],
  };
  await run.writeRunJson(summary);
  emit({ type: 'run-started', runId: run.runId, runDir: run.dir, plan, timeMs: Date.now() });

  const agents: DeployedAgent[] = [];
  const phase = (p: string, detail: string) => emit({ type: 'phase', runId: run.runId, phase: p, detail, timeMs: Date.now() });
  // Cancel ends every agent session at once, so a request in flight (a long FORWARD) rejects now, not when it ends.
  const onAbort = () => {
    for (const a of agents) a.client.terminate('aborted', `training was stopped (agent on ${a.serial} ended)`);
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    phase('deploy', `packing (${o.weightFormat} base weights) and pushing ${planned.length} stages via ${o.deployer.description}`);
    await deployStages(o, folder, planned, emit, run.runId, agents);
    const bySerial = new Map(agents.map((a) => [a.serial, a]));
    const stages: StageHandle[] = planned.map((st) => ({ serial: st.serial, client: bySerial.get(st.serial)!.client }));

    const evalSet = data.validation.slice(0, o.evalSequences);
    await run.writeEvalSet(evalSet.map((x) => ({ tokens: [...x.tokens], targets: [...x.targets], mask: [...x.mask] })));
    const evalMicros = chunk(evalSet, o.microBatchSize).map(collateBatch);
    const genOpts = { maxNewTokens: o.sampleTokens, temperature: 0, seed: o.seed, stopIds: folder.config.eosTokenIds, maxPositions: o.seqLen * 8 };

    phase('evaluate', 'held-out loss and samples before training');
    const evalLossBefore = await evaluate(stages, evalMicros);
    emit({ type: 'eval', runId: run.runId, when: 'before', loss: evalLossBefore, timeMs: Date.now() });
    const samplesBefore: string[] = [];
    for (const p of o.samplePrompts) samplesBefore.push(await generateText(stages, tok, p, genOpts));

    phase('train', `${o.steps} steps, ${o.microBatches} micro-batches of ${o.microBatchSize}x${o.seqLen} tokens, 1F1B`);
    const losses: number[] = [];
    const peakRss = new Map<string, number>();
    const busyUsBefore = new Map<string, number>();
    for (const a of agents) busyUsBefore.set(a.serial, (await a.client.stats()).busyUs); // exclude evaluation time
    let order: number[] = [];
    let cursor = 0;
    let epoch = 0;
    let trainMs = 0;
    let trainTokens = 0;
    for (let step = 1; step <= o.steps; step++) {
      if (o.signal?.aborted) throw new Error('training was stopped');
      const picked: TrainingSample[] = [];
      while (picked.length < stepSamples) {
        if (cursor >= order.length) ((order = epochOrder(data.train.length, o.seed, epoch++)), (cursor = 0));
        picked.push(data.train[order[cursor++]]);
      }
      const micros = chunk(picked, o.microBatchSize).map(collateBatch);
      const weight = micros.reduce((sum, mb) => sum + mb.maskSum, 0);
      const t0 = performance.now();
      const pass = await runPass(stages, micros, { train: true, lossScale: 1 / weight });
      const lr = learningRate({ peakLr: o.peakLr, warmupSteps: o.warmupSteps, totalSteps: o.steps, minLrRatio: 0.1 }, step);
      const { gradNorm } = await optimizerStep(stages, step, lr, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm });
      const stepMs = performance.now() - t0;
      trainMs += stepMs;
      trainTokens += weight;
      const loss = pass.lossSum / pass.weightSum;
      losses.push(loss);
      const tokPerSec = weight / (stepMs / 1000);
      emit({ type: 'step', runId: run.runId, step, totalSteps: o.steps, loss, lr, tokPerSec, timeMs: Date.now() });
      for (const a of agents) {
        const st = await a.client.stats();
        peakRss.set(a.serial, Math.max(peakRss.get(a.serial) ?? 0, st.peakRssBytes));
        const busyMs = (st.busyUs - (busyUsBefore.get(a.serial) ?? 0)) / 1000;
        busyUsBefore.set(a.serial, st.busyUs);
        emit({ type: 'device-step', runId: run.runId, step, serial: a.serial, busyMs, rssBytes: st.rssBytes, peakRssBytes: st.peakRssBytes, bytesIn: st.bytesIn, bytesOut: st.bytesOut, timeMs: Date.now() });
      }
      emit({ type: 'timeline', runId: run.runId, step, gradNorm, relayBytes: pass.relayBytes, spans: pass.spans, timeMs: Date.now() });
      summary.losses = losses;
    }

    phase('evaluate', 'held-out loss and samples after training');
    const evalLossAfter = await evaluate(stages, evalMicros);
    emit({ type: 'eval', runId: run.runId, when: 'after', loss: evalLossAfter, timeMs: Date.now() });
    const samplesAfter: string[] = [];
    for (const p of o.samplePrompts) samplesAfter.push(await generateText(stages, tok, p, genOpts));

    phase('export', 'collecting LoRA tensors and writing the PEFT adapter');
    const lora: NamedTensor[] = [];
    for (const st of stages) lora.push(...(await st.client.getLora()));
    await exportPeft(lora, { baseModel: o.modelDir, rank: o.loraRank, alpha: o.loraAlpha, targetModules: [...o.loraModules] }, run.adapterDir);

    // The agents' held-out numbers, checked independently (onnxruntime on the exported adapter); never fails the run.
    phase('evaluate', 'held-out loss of the base and base + adapter with onnxruntime (independent check)');
    const heldOutLossOrt = await ortHeldOutLoss(o.modelDir, run.evalSetPath, run.adapterDir).catch((e: Error) => ({ error: e.message }));

    const tokPerSec = trainTokens / (trainMs / 1000);
    Object.assign(summary, {
      status: 'finished',
      steps: o.steps,
      tokPerSec,
      evalLossBefore,
      evalLossAfter,
      heldOutLossOrt,
      evalSet: 'eval-set.jsonl',
      samplesBefore,
      samplesAfter,
      adapter: 'adapter',
      devices: planned.map((st) => ({ serial: st.serial, layerStart: st.layerStart, layerEnd: st.layerEnd, predictedBytes: st.predictedBytes, peakRssBytes: peakRss.get(st.serial) ?? null })),
    });
    await run.writeRunJson(summary);
    emit({ type: 'run-finished', runId: run.runId, runDir: run.dir, ok: true, timeMs: Date.now() });
    return { runId: run.runId, runDir: run.dir, adapterDir: run.adapterDir, losses, evalLossBefore, evalLossAfter, heldOutLossOrt, samplesBefore, samplesAfter, tokPerSec, plan };
  } catch (e) {
    const error = o.signal?.aborted ? 'training was stopped' : await explainFailure(e, agents);
    if (e instanceof Error && error !== e.message) e.message = error;
    Object.assign(summary, { status: 'failed', error });
    await run.writeRunJson(summary);
    emit({ type: 'run-finished', runId: run.runId, runDir: run.dir, ok: false, error, timeMs: Date.now() });
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
  }
}
