// A whole fine-tuning run, top to bottom: plan the stages, pack and deploy them, initialise LoRA, evaluate, train
// with 1F1B through the pipeline (checkpointing every N steps; a lost phone pauses, re-plans on the rest and goes on
// from the last checkpoint), evaluate again, export the adapter and record everything in the run folder. A run can
// also resume from its folder's latest checkpoint. Device discovery and transport are injected (a StageDeployer),
// so the same job runs over adb or local agents.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RelayDtype, TrainEvent, TrainPlan } from '../api/types.js';
import { openModel, type ModelFolder } from '../model/model-folder.js';
import { packStage } from '../model/stage-pack.js';
import type { WeightFormat } from '../model/quantize.js';
import { loadModelTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import type { NamedTensor } from '../protocol/messages.js';
import { partitionLayers, planPipeline, type DeviceProfile, type PlanDevice, type PlannedStage } from '../plan/partition.js';
import { measuredBubble } from '../plan/measured-bubble.js';
import { checkZoQueriesPerOp, defaultZoQueriesPerOp, opsPerStep } from '../plan/zo-ops.js';
import { plannedFromLayout as givenLayout, type LayoutStage } from '../plan/plan-preview.js';
import type { PauseGate } from './pause-gate.js';
import { measureStages } from './profile-plan.js';
import { forFreshAgents, restartAfterProfile, plannedStages, replan, repredict, splitEntries, type StageMeasurement } from './measured-plan.js';
import { measuredRecord, planningRecord, type PlanningRecord } from './plan-record.js';
import type { DeployedAgent, StageDeployer } from '../deploy/stage-deployer.js';
import { exportPeft } from '../export/peft.js';
import { loadTrainingData, type DatasetOptions } from './training-data.js';
import { collateBatch, epochOrder, type TrainingSample } from '../data/samples.js';
import { initialLora } from './lora-init.js';
import { targetMask, LORA_MODULES, type LoraModule } from './lora-modules.js';
import { learningRate } from './lr-schedule.js';
import { runPass, backpropStep, type AdamWSettings, type MicroBatch, type StageHandle, type StepOutcome } from './pipeline.js';
import { CHECKPOINT_VERSION, readLatestCheckpoint, tensorsForLayers, writeCheckpoint, type Checkpoint, type CheckpointState, type DataCursor } from './checkpoint.js';
import { DEFAULT_MAX_RECOVERIES, decideRecovery, lostSerials } from './recovery.js';
import { DeviceMeter, etaMs } from './metrics.js';
import { generateText } from './generate.js';
import { RunFolder } from './run-folder.js';
import { ortHeldOutLoss, type OrtHeldOutLoss } from './ort-eval.js';
import { zoStep } from './zo-step.js';

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
  /** Checkpoint every this many steps, and after the last (default DEFAULT_CHECKPOINT_EVERY). */
  checkpointEvery?: number;
  /** Wire format of relayed activations and gradients (default f16: half the bytes). */
  relay?: RelayDtype;
  /** How many times a run re-plans after losing phones before it fails (default DEFAULT_MAX_RECOVERIES). */
  maxRecoveries?: number;
  /**
   * Re-plan from the PROFILE measurements and redeploy when clearly faster (default true). Off keeps the first plan
   * (still profiled and recorded): two runs that must give the same numbers (a comparison, a test) need one layout.
   */
  replan?: boolean;
  /**
   * Train on this layout (stages in order, each device's contiguous layers; the Plan step's, maybe edited) instead
   * of the job's own first split. It must fit every device's budget. Re-planning after PROFILE still applies unless
   * `replan` is false; a recovery after a lost phone plans afresh on the phones left.
   */
  layout?: readonly LayoutStage[];
  /** Holds the run between steps while paused (the UI's Pause); absent: never paused. */
  pause?: PauseGate;
  /** How a step trains (the seam where more modes plug in: TRAINING_MODES). Default backprop. */
  mode?: TrainingMode;
  /** P-RGE: perturbation directions per step (q; each costs 2 forward copies) and their size (default 4, 1e-2). */
  zoQueries?: number;
  zoEps?: number;
  /**
   * P-RGE: queries whose 2 copies each ride in one ZO_FORWARD op (a divisor of zoQueries). Default: the smallest
   * that keeps an op at MIN_ZO_OP_ROWS rows (plan/zo-ops.ts), so a multi-phone pipeline fills on small ops.
   */
  zoQueriesPerOp?: number;
  /**
   * Continue this run folder from its latest checkpoint, in the same folder. The settings that shape the numbers
   * (RESUMABLE_SETTINGS) come from the checkpoint, so the continuation equals an uninterrupted run; devices and the
   * deployer are this call's (the plan is made again for them).
   */
  resumeFrom?: string;
  onEvent?: (e: TrainEvent) => void;
  signal?: AbortSignal;
}

export const DEFAULT_CHECKPOINT_EVERY = 10;

/** One training step of a mode: what it needs from the job, whatever the mode. */
export interface StepContext {
  step: number;
  lr: number;
  /** The step's total loss weight (trained tokens). */
  weight: number;
  adamw: AdamWSettings;
  relay: RelayDtype;
  /** The run's seed: with `step` it keys P-RGE's perturbation directions on every stage. */
  seed: number;
  /** P-RGE: directions per step, how many ride in one ZO_FORWARD, and the perturbation size. */
  zo: { queries: number; queriesPerOp: number; eps: number };
}
export type TrainStepFn = (stages: StageHandle[], micros: MicroBatch[], ctx: StepContext) => Promise<StepOutcome>;

/**
 * The training modes, one function per mode: the job picks one by `mode` and calls it once per step; everything
 * around it (data, LR, checkpoints, recovery, metrics) is shared. Another mode (e.g. P-RGE) adds an entry here.
 */
export const TRAINING_MODES = {
  backprop: backpropStep,
  zo: zoTrainStep,
} satisfies Record<string, TrainStepFn>;

/**
 * P-RGE (zeroth-order, LoRA-FA: A frozen, only B moves): forward-only, the 2q perturbed copies flow through the
 * stages as micro-batches and every stage applies the same (seed, step, g) update. No AdamW moments, no clipping;
 * the reported "gradient norm" is that of the q projected gradients.
 */
async function zoTrainStep(stages: StageHandle[], micros: MicroBatch[], ctx: StepContext): Promise<StepOutcome> {
  const r = await zoStep(stages, micros, { seed: ctx.seed, step: ctx.step, lr: ctx.lr, queries: ctx.zo.queries, queriesPerOp: ctx.zo.queriesPerOp, eps: ctx.zo.eps, relay: ctx.relay });
  return { loss: r.loss, gradNorm: Math.hypot(...r.projectedGradients), relayBytes: r.relayBytes, spans: r.spans };
}
export type TrainingMode = keyof typeof TRAINING_MODES;

/** The options that shape a run's numbers; a checkpoint records them and a resume takes them from it. */
export const RESUMABLE_SETTINGS = [
  'modelDir', 'datasetPath', 'steps', 'microBatches', 'microBatchSize', 'seqLen', 'loraRank', 'loraAlpha', 'loraModules', 'weightFormat',
  'peakLr', 'warmupSteps', 'maxGradNorm', 'weightDecay', 'seed', 'validationFraction', 'evalSequences', 'dataset', 'relay',
  'checkpointEvery', 'mode', 'zoQueries', 'zoEps', 'zoQueriesPerOp',
] as const satisfies ReadonlyArray<keyof TrainJobOptions>;

/** AdamW's fixed hyper-parameters (the LR comes from the schedule). */
const ADAMW_BETAS = { beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const;
const MIN_LR_RATIO = 0.1;

/** One record per phone loss, kept in run.json. */
export interface Interruption {
  atStep: number;
  lostSerials: string[];
  error: string;
  attempt: number;
  /** The checkpoint training went on from (0: the initial adapter); null when the run gave up. */
  resumedFromStep: number | null;
  plan: TrainPlan | null;
  timeMs: number;
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
  /** The checkpoint written after the last step. */
  checkpointDir: string;
  interruptions: Interruption[];
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
  checkpointEvery: DEFAULT_CHECKPOINT_EVERY,
  relay: 'f16',
  maxRecoveries: DEFAULT_MAX_RECOVERIES,
  mode: 'backprop',
  zoQueries: 4,
  zoEps: 1e-2,
  samplePrompts: ['Once upon a time, there was a little girl named'],
  sampleTokens: 24,
} as const;

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Held-out loss, always relayed in f32 so runs with either relay format are measured alike. */
async function evaluate(stages: StageHandle[], micros: MicroBatch[]): Promise<number> {
  const pass = await runPass(stages, micros, { train: false, relay: 'f32' });
  return pass.lossSum / pass.weightSum;
}

/**
 * Packs, pushes and loads every planned stage, then sets its LoRA: `lora(stage)` gives the stage's tensors (the
 * initial adapter, or a checkpoint's values and AdamW moments).
 */
async function deployStages(
  o: TrainJobOptions, folder: ModelFolder, planned: PlannedStage[], devices: PlanDevice[], lora: (st: PlannedStage) => NamedTensor[],
  emit: (e: TrainEvent) => void, runId: string, agents: DeployedAgent[], idleRssBytes: Map<string, number>,
): Promise<void> {
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
          memoryBudgetBytes: devices.find((d) => d.serial === st.serial)!.budgetBytes,
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
        // The idle agent's footprint (binary, threads, OpenCL driver) is the memory model's base: only a measurement knows it.
        idleRssBytes.set(st.serial, (await agent.client.stats()).rssBytes);
        const loaded = await agent.client.loadStage({ path: agent.stagePath, loraRank: o.loraRank, loraAlpha: o.loraAlpha, targetMask: targetMask(o.loraModules), flags: 0 });
        if (loaded.layerStart !== st.layerStart || loaded.layerEnd !== st.layerEnd) {
          throw new Error(`${st.serial} loaded layers [${loaded.layerStart}, ${loaded.layerEnd}) but the plan says [${st.layerStart}, ${st.layerEnd})`);
        }
        await agent.client.setLora(lora(st));
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

/** The settings a checkpoint records (RESUMABLE_SETTINGS), with their defaults filled in. */
function resumableSettings(o: TrainJobOptions): Record<string, unknown> {
  return Object.fromEntries(RESUMABLE_SETTINGS.map((k) => [k, o[k]]));
}

/** Takes one step's samples in epoch order, reshuffling (epochOrder) at each epoch's end; advances `at` in place. */
function takeSamples(train: TrainingSample[], at: DataCursor, count: number, seed: number): TrainingSample[] {
  let order = at.epoch > 0 ? epochOrder(train.length, seed, at.epoch - 1) : [];
  const picked: TrainingSample[] = [];
  while (picked.length < count) {
    if (at.cursor >= order.length) ((order = epochOrder(train.length, seed, at.epoch++)), (at.cursor = 0));
    picked.push(train[order[at.cursor++]]);
  }
  return picked;
}

export async function runTrainJob(options: TrainJobOptions): Promise<TrainJobResult> {
  // A resume takes the numbers-shaping settings from the checkpoint, so it continues the run it was.
  const resumeCk = options.resumeFrom ? await readLatestCheckpoint(options.resumeFrom) : null;
  if (options.resumeFrom && !resumeCk) throw new Error(`${options.resumeFrom} has no checkpoint to resume from (no checkpoints/latest)`);
  const o: TrainJobOptions = resumeCk ? { ...options, ...(resumeCk.state.settings as Partial<TrainJobOptions>) } : options;
  const checkpointEvery = o.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
  const relay: RelayDtype = o.relay ?? 'f16';
  const maxRecoveries = o.maxRecoveries ?? DEFAULT_MAX_RECOVERIES;
  const mode: TrainingMode = o.mode ?? 'backprop';
  const trainStep: TrainStepFn = TRAINING_MODES[mode];
  if (!trainStep) throw new Error(`unknown training mode "${mode}" (known: ${Object.keys(TRAINING_MODES).join(', ')})`);
  if (!(Number.isInteger(checkpointEvery) && checkpointEvery >= 1)) throw new Error(`checkpointEvery must be a whole number >= 1, got ${checkpointEvery}`);

  const folder = await openModel(o.modelDir);
  const tok: TextTokenizer = await loadModelTokenizer(folder);
  const data = await loadTrainingData(o.datasetPath, tok, { seqLen: o.seqLen, validationFraction: o.validationFraction, seed: o.seed, modelDir: o.modelDir, dataset: o.dataset });
  const stepSamples = o.microBatches * o.microBatchSize;
  if (data.train.length < stepSamples) {
    throw new Error(`${o.datasetPath} gives ${data.train.length} training sequences of ${o.seqLen} tokens; one step needs ${stepSamples}`);
  }
  const shape = { loraRank: o.loraRank, microBatchSize: o.microBatchSize, seqLen: o.seqLen, weightFormat: o.weightFormat };
  const planFor = (planned: PlannedStage[]): TrainPlan => ({ stages: planned, microBatches: o.microBatches, microBatchSize: o.microBatchSize, seqLen: o.seqLen });
  let devices = o.devices;
  // Measured planning (profile-plan.ts): filled after the first deploy; later (re)plans use the measured profiles.
  const zoQueries = o.zoQueries ?? DEFAULT_TRAIN_SETTINGS.zoQueries;
  const zoQueriesPerOp = o.zoQueriesPerOp ?? defaultZoQueriesPerOp(zoQueries, o.microBatchSize, o.seqLen);
  checkZoQueriesPerOp(zoQueries, zoQueriesPerOp);
  const planSettings = { ...shape, microBatches: o.microBatches, mode, zoQueries, zoQueriesPerOp, targetMask: targetMask(o.loraModules) };
  const opsPerStepOf = opsPerStep(planSettings);
  const measuredProfiles = new Map<string, DeviceProfile>();
  const headSplits = new Map<string, StageMeasurement['split']>();
  const idleRssBytes = new Map<string, number>();
  const planStages = (ds: PlanDevice[]): PlannedStage[] => ds.every((d) => measuredProfiles.has(d.serial))
    ? plannedStages(planPipeline(folder.config, ds.map((d) => ({ ...measuredProfiles.get(d.serial)!, budgetBytes: d.budgetBytes })), planSettings))
    : partitionLayers(folder.config, ds, shape);
  let planned = o.layout ? givenLayout(folder.config, devices, planSettings, o.layout) : partitionLayers(folder.config, devices, shape);
  let plan = planFor(planned);

  const run = resumeCk ? await RunFolder.open(options.resumeFrom!) : await RunFolder.create(o.runsDir);
  const emit = (e: TrainEvent) => {
    o.onEvent?.(e);
    void run.appendEvent(e);
  };
  const previous = resumeCk ? await run.readRunJson() : {};
  const interruptions: Interruption[] = (previous.interruptions as Interruption[] | undefined) ?? [];
  const summary: Record<string, unknown> = {
    ...previous,
    runId: run.runId,
    status: 'running',
    model: { dir: o.modelDir, type: folder.config.modelType, layers: folder.config.numLayers, hiddenSize: folder.config.hiddenSize },
    dataset: { path: o.datasetPath, trainSequences: data.train.length, validationSequences: data.validation.length },
    transport: o.deployer.description,
    plan,
    settings: { ...o, checkpointEvery, relay, maxRecoveries, mode, devices: undefined, deployer: undefined, onEvent: undefined, signal: undefined, pause: undefined },
    losses: resumeCk ? [...resumeCk.state.losses] : ([] as number[]),
    interruptions,
  };
  if (resumeCk) {
    summary.resumes = [...((previous.resumes as unknown[] | undefined) ?? []), { fromStep: resumeCk.state.step, checkpoint: resumeCk.dir, timeMs: Date.now() }];
    delete summary.error;
  }
  await run.writeRunJson(summary);
  emit({ type: 'run-started', runId: run.runId, runDir: run.dir, plan, timeMs: Date.now() });

  const agents: DeployedAgent[] = [];
  const phase = (p: string, detail: string) => emit({ type: 'phase', runId: run.runId, phase: p, detail, timeMs: Date.now() });
  // A phase event that also carries its numbers (`data`, kept in events.jsonl) until the UI has a typed event for them.
  const emitData = (p: string, detail: string, data: unknown) => {
    const event = { type: 'phase' as const, runId: run.runId, phase: p, detail, data, timeMs: Date.now() };
    emit(event);
  };
  // Cancel ends every agent session at once, so a request in flight (a long FORWARD) rejects now, not when it ends.
  const onAbort = () => {
    for (const a of agents) a.client.terminate('aborted', `training was stopped (agent on ${a.serial} ended)`);
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const stopAgents = async () => {
    const gone = agents.splice(0);
    await Promise.all(gone.map((a) => a.stop().catch(() => undefined)));
  };
  /** Plans on `devices`, deploys, and sets each stage's LoRA from `ck` (or the initial adapter); returns the stages. */
  const startPipeline = async (ck: Checkpoint | null, layout?: PlannedStage[]): Promise<StageHandle[]> => {
    planned = layout ?? planStages(devices);
    plan = planFor(planned);
    summary.plan = plan;
    const lora = (st: PlannedStage) => ck
      ? tensorsForLayers(ck.tensors, st.layerStart, st.layerEnd)
      : initialLora(folder.config, st.layerStart, st.layerEnd, o.loraRank, o.loraModules, o.seed);
    phase('deploy', `packing (${o.weightFormat} base weights) and pushing ${planned.length} stages via ${o.deployer.description}`);
    await deployStages(o, folder, planned, devices, lora, emit, run.runId, agents, idleRssBytes);
    const bySerial = new Map(agents.map((a) => [a.serial, a]));
    // LOAD_STAGE resets the split: a redeployed stage gets its device's measured split again.
    for (const st of planned) {
      const split = headSplits.get(st.serial);
      if (split && bySerial.get(st.serial)!.client.capabilities.opencl) await bySerial.get(st.serial)!.client.setSplit(splitEntries(split, st.layerEnd - st.layerStart));
    }
    return planned.map((st) => ({ serial: st.serial, client: bySerial.get(st.serial)!.client }));
  };

  const layoutKey = (p: { stages: ReadonlyArray<{ serial: string; layerStart: number; layerEnd: number }> }) => p.stages.map((s) => `${s.serial}:${s.layerStart}-${s.layerEnd}`).join(' ');
  /** PROFILE every stage, apply head splits, re-plan on the measurements and redeploy when clearly faster. */
  const planFromMeasurements = async (ck: Checkpoint | null): Promise<PlanningRecord> => {
    phase('profile', `timing every stage's layers on each backend (PROFILE, ${o.microBatchSize}x${o.seqLen} tokens) and each link`);
    // A resume applies the splits the run had (on the devices it had them), so its numbers continue exactly.
    const recorded = (previous.planning as PlanningRecord | undefined)?.headSplits ?? [];
    const resumedSplits = ck ? new Map(recorded.map((h) => [h.serial, h.applied ? h : { ...h, gpuKvGroups: 0, gpuMlpCols: 0 }])) : undefined;
    const budgetOf = (serial: string) => devices.find((d) => d.serial === serial)!.budgetBytes;
    const shapeOf = () => ({ microBatchSize: o.microBatchSize, seqLen: o.seqLen, mode, zoQueries, zoQueriesPerOp, relay, weightFormat: o.weightFormat });
    const measured = await measureStages(folder.config, planned.map((st, s) => ({ ...st, client: stages[s].client })),
      (serial) => ({ serial, budgetBytes: budgetOf(serial), idleRssBytes: idleRssBytes.get(serial) }), shapeOf(), resumedSplits);
    for (const m of measured) {
      if (m.splitError) phase('profile', `${m.serial}: CPU/OpenCL split ${m.split.gpuKvGroups} KV groups / ${m.split.gpuMlpCols} MLP columns ${m.splitError}`);
      measuredProfiles.set(m.serial, m.device); // what a recovery re-plans with
      if (m.splitApplied) headSplits.set(m.serial, m.split);
    }
    let r = replan(folder.config, measured.map((m) => m.device), planSettings, planned);
    if (r.redeploy && ck) r = { ...r, redeploy: false, reason: `${r.reason.replace(/: redeploying$/, '')}: kept, a resume continues on its checkpoint's layout` };
    if (r.redeploy && o.replan === false) r = { ...r, redeploy: false, reason: `${r.reason.replace(/: redeploying$/, '')}: kept, re-planning is off for this run` };
    if (r.redeploy) {
      // One PROFILE can catch a burst of other load: a redeploy needs a second measurement proposing the same.
      const again = await measureStages(folder.config, planned.map((st, s) => ({ ...st, client: stages[s].client })),
        (serial) => ({ serial, budgetBytes: budgetOf(serial), idleRssBytes: idleRssBytes.get(serial) }), shapeOf(), new Map(measured.map((m) => [m.serial, m.splitApplied ? m.split : { ...m.split, gpuKvGroups: 0, gpuMlpCols: 0 }])));
      const confirm = replan(folder.config, again.map((m) => m.device), planSettings, planned);
      if (!(confirm.redeploy && layoutKey(confirm.proposed) === layoutKey(r.proposed))) {
        r = { ...r, redeploy: false, reason: `${r.reason.replace(/: redeploying$/, '')}; a second PROFILE did not confirm it (${confirm.reason.replace(/: (kept|redeploying)$/, '')}): kept` };
      }
    }
    phase('plan', r.reason);
    if (r.redeploy || restartAfterProfile(measured)) {
      const chosen = r.redeploy ? r.proposed : r.current;
      if (!r.redeploy) {
        const mib = measured.map((m) => `${m.serial} ${(m.device.secondaryResidentBytes / 2 ** 20).toFixed(0)} MiB`).join(', ');
        phase('deploy', `restarting the agents on the same plan: PROFILE left OpenCL buffers resident (${mib}) that training would carry`);
      }
      await stopAgents();
      stages = await startPipeline(ck, plannedStages(chosen));
      // The new agents' memory: their own idle RSS (no PROFILE buffers); their speeds are the measured ones.
      const fresh = new Map(measured.map((m) => [m.serial, forFreshAgents(m.device, idleRssBytes.get(m.serial))]));
      const deployed = repredict(folder.config, chosen, fresh, planSettings);
      planned = plannedStages(deployed);
      plan = planFor(planned);
      summary.plan = plan;
      return planningRecord(measured.map((m) => ({ ...m, device: fresh.get(m.serial)! })), deployed, opsPerStepOf, r);
    }
    // Same layout and agents; its predicted bytes now use the measured idle RSS and CPU kernel.
    planned = plannedStages(r.current);
    plan = planFor(planned);
    summary.plan = plan;
    return planningRecord(measured, r.current, opsPerStepOf, r);
  };

  // Where training stands; a checkpoint is a copy of this plus the adapters.
  const loop = {
    step: resumeCk?.state.step ?? 0,
    data: resumeCk ? { ...resumeCk.state.data } : { epoch: 0, cursor: 0 },
    losses: resumeCk ? [...resumeCk.state.losses] : ([] as number[]),
  };
  const schedule = { peakLr: o.peakLr, warmupSteps: o.warmupSteps, totalSteps: o.steps, minLrRatio: MIN_LR_RATIO };
  let lastCheckpoint: Checkpoint | null = resumeCk;
  const explained = new Set<unknown>(); // errors whose message already carries the agents' diagnosis
  let stages: StageHandle[] = [];

  const saveCheckpoint = async () => {
    const tensors: NamedTensor[] = [];
    for (const st of stages) tensors.push(...(await st.client.getLora({ includeMoments: true })));
    const state: CheckpointState = {
      version: CHECKPOINT_VERSION, step: loop.step, totalSteps: o.steps, data: { ...loop.data }, rng: { seed: o.seed },
      lrSchedule: { ...schedule, nextStep: loop.step + 1 }, plan, losses: [...loop.losses],
      settings: resumableSettings({ ...o, checkpointEvery, relay, mode }), timeMs: Date.now(),
    };
    const dir = await writeCheckpoint(run.dir, state, tensors);
    lastCheckpoint = { dir, state, tensors };
    const bytes = tensors.reduce((n, t) => n + t.tensor.data.byteLength, 0);
    summary.checkpoint = { step: loop.step, dir };
    await run.writeRunJson(summary);
    emit({ type: 'checkpoint', runId: run.runId, step: loop.step, dir, bytes, timeMs: Date.now() });
  };

  try {
    // A resume on the same phones deploys its checkpoint's layout: a different cut relays other tensors in f16 and
    // would change the numbers the resume must continue exactly.
    const ckStages = resumeCk?.state.plan.stages;
    // (The checkpoint's plan may have left phones out: every phone it used must be here, not every phone here used.)
    const sameDevices = ckStages && ckStages.every((st) => devices.some((d) => d.serial === st.serial));
    stages = await startPipeline(resumeCk, sameDevices ? ckStages : o.layout ? planned : undefined);
    const planning = await planFromMeasurements(resumeCk);
    summary.planning = planning;
    await run.writeRunJson(summary);
    emitData('planning', `predicted ${planning.predictedStepMs.toFixed(0)} ms/step, bubble ${(planning.predictedBubble * 100).toFixed(1)}% ` +
      `(1F1B theory ${(planning.theoreticalBubble * 100).toFixed(1)}%), memory ${planning.predictedBytes.map((p) => `${p.serial} ${(p.bytes / 2 ** 20).toFixed(0)} MiB`).join(', ')}`, planning);
    if (resumeCk) emit({ type: 'resumed', runId: run.runId, fromStep: resumeCk.state.step, plan, attempt: 0, timeMs: Date.now() });

    const evalSet = data.validation.slice(0, o.evalSequences);
    if (!resumeCk) await run.writeEvalSet(evalSet.map((x) => ({ tokens: [...x.tokens], targets: [...x.targets], mask: [...x.mask] })));
    const evalMicros = chunk(evalSet, o.microBatchSize).map(collateBatch);
    const genOpts = { maxNewTokens: o.sampleTokens, temperature: 0, seed: o.seed, stopIds: folder.config.eosTokenIds, maxPositions: o.seqLen * 8 };

    // Before-training numbers describe the base adapter: a resume keeps the first run's.
    let evalLossBefore = previous.evalLossBefore as number | undefined;
    let samplesBefore = (previous.samplesBefore as string[] | undefined) ?? [];
    if (evalLossBefore === undefined) {
      phase('evaluate', 'held-out loss and samples before training');
      evalLossBefore = await evaluate(stages, evalMicros);
      emit({ type: 'eval', runId: run.runId, when: 'before', loss: evalLossBefore, timeMs: Date.now() });
      samplesBefore = [];
      for (const p of o.samplePrompts) samplesBefore.push(await generateText(stages, tok, p, genOpts));
      Object.assign(summary, { evalLossBefore, samplesBefore });
    }

    const zoOps = mode === 'zo' ? ` (${zoQueries} queries, ${zoQueriesPerOp} per op: ${opsPerStepOf} ops per stage and step)` : '';
    phase('train', `${o.steps} steps from step ${loop.step + 1}, ${o.microBatches} micro-batches of ${o.microBatchSize}x${o.seqLen} tokens, ${mode}${zoOps}, ` +
      `relay ${relay}, checkpoint every ${checkpointEvery}`);
    const meter = new DeviceMeter();
    let trainMs = 0;
    let trainTokens = 0;
    let stepsTimed = 0;
    let relayBytesTotal = 0;
    const stepMsList: number[] = [];
    const bubbles: number[] = [];
    const busyMs = new Map<string, number[]>();
    const adamw: AdamWSettings = { ...ADAMW_BETAS, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm };

    const trainUntilDone = async () => {
      await meter.baseline(agents); // exclude evaluation and deployment time
      while (loop.step < o.steps) {
        if (o.signal?.aborted) throw new Error('training was stopped');
        const step = loop.step + 1;
        if (o.pause?.isPaused) {
          emit({ type: 'hold', runId: run.runId, step, paused: true, timeMs: Date.now() });
          await o.pause.wait(o.signal, () => Promise.all(agents.map((a) => a.client.stats())));
          if (o.signal?.aborted) throw new Error('training was stopped');
          emit({ type: 'hold', runId: run.runId, step, paused: false, timeMs: Date.now() });
          await meter.baseline(agents); // the pause's keep-alive pings are not the next step's work
        }
        const cursor = { ...loop.data };
        const micros = chunk(takeSamples(data.train, cursor, stepSamples, o.seed), o.microBatchSize).map(collateBatch);
        const weight = micros.reduce((sum, mb) => sum + mb.maskSum, 0);
        const lr = learningRate(schedule, step);
        const t0 = performance.now();
        const out = await trainStep(stages, micros, { step, lr, weight, adamw, relay, seed: o.seed, zo: { queries: zoQueries, queriesPerOp: zoQueriesPerOp, eps: o.zoEps ?? DEFAULT_TRAIN_SETTINGS.zoEps } });
        const stepMs = performance.now() - t0;
        // Only a completed step moves the cursor: a step lost to a failure is replayed from the checkpoint.
        loop.step = step;
        loop.data = cursor;
        loop.losses.push(out.loss);
        trainMs += stepMs;
        trainTokens += weight;
        stepsTimed++;
        relayBytesTotal += out.relayBytes;
        stepMsList.push(stepMs);
        bubbles.push(measuredBubble(out.spans).bubble);
        summary.losses = loop.losses;
        emit({ type: 'step', runId: run.runId, step, totalSteps: o.steps, loss: out.loss, lr, tokPerSec: weight / (stepMs / 1000), stepMs,
          etaMs: etaMs(trainMs, stepsTimed, o.steps - step) ?? undefined, timeMs: Date.now() });
        for (const ev of await meter.step(agents, run.runId, step, stepMs)) {
          busyMs.set(ev.serial, [...(busyMs.get(ev.serial) ?? []), ev.busyMs]);
          emit(ev);
        }
        emit({ type: 'timeline', runId: run.runId, step, gradNorm: out.gradNorm, relayBytes: out.relayBytes, relayDtype: relay, spans: out.spans, timeMs: Date.now() });
        if (step % checkpointEvery === 0 || step === o.steps) await saveCheckpoint();
      }
    };

    // Phone loss: pause, re-plan on the phones left, redeploy, restore the last checkpoint, go on; up to maxRecoveries.
    for (let attempt = 1; ; attempt++) {
      try {
        await trainUntilDone();
        break;
      } catch (e) {
        if (o.signal?.aborted) throw e;
        const lost = lostSerials(agents);
        const error = await explainFailure(e, agents);
        const note = lastCheckpoint
          ? `the last checkpoint (step ${lastCheckpoint.state.step}) is kept in ${lastCheckpoint.dir}; continue with: confidant train --resume ${run.dir}`
          : 'no checkpoint was written yet';
        const decision = decideRecovery(devices, lost, attempt, maxRecoveries, note);
        const record: Interruption = { atStep: loop.step + 1, lostSerials: lost, error, attempt, resumedFromStep: null, plan: null, timeMs: Date.now() };
        if (lost.length) interruptions.push(record);
        emit({ type: 'paused', runId: run.runId, step: loop.step + 1, lostSerials: lost, reason: error, attempt, giveUp: decision.kind === 'give-up', timeMs: Date.now() });
        if (decision.kind === 'give-up') {
          const final = e instanceof Error ? e : new Error(error);
          final.message = lost.length ? `${error}\n${decision.reason}` : error;
          explained.add(final);
          throw final;
        }
        phase('recover', `lost ${lost.join(', ')}; re-planning on ${decision.devices.map((d) => d.serial).join(', ')} and restoring ` +
          (lastCheckpoint ? `the checkpoint of step ${lastCheckpoint.state.step}` : 'the initial adapter'));
        await stopAgents();
        devices = decision.devices;
        const ck: Checkpoint | null = lastCheckpoint;
        loop.step = ck?.state.step ?? 0;
        loop.data = ck ? { ...ck.state.data } : { epoch: 0, cursor: 0 };
        loop.losses = ck ? [...ck.state.losses] : [];
        summary.losses = loop.losses;
        stages = await startPipeline(ck);
        meter.reset();
        Object.assign(record, { resumedFromStep: loop.step, plan });
        await run.writeRunJson(summary);
        emit({ type: 'resumed', runId: run.runId, fromStep: loop.step, plan, attempt, timeMs: Date.now() });
      }
    }
    const losses = loop.losses;

    const measured = measuredRecord(stepMsList, bubbles, meter.peakRssBytes, busyMs, summary.planning as PlanningRecord | undefined);
    summary.measured = measured;
    emitData('measured', `median step ${measured.medianStepMs?.toFixed(0)} ms (${measured.stepMsOverPredicted?.toFixed(2)}x predicted), bubble ` +
      `${((measured.bubble ?? 0) * 100).toFixed(1)}%, peak memory ${measured.peakRssBytes.map((p) => `${p.serial} ${(p.bytes / 2 ** 20).toFixed(0)} MiB`).join(', ')}`, measured);

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
      relayBytesPerStep: stepsTimed ? relayBytesTotal / stepsTimed : 0,
      evalLossBefore,
      evalLossAfter,
      heldOutLossOrt,
      evalSet: 'eval-set.jsonl',
      samplesBefore,
      samplesAfter,
      adapter: 'adapter',
      devices: planned.map((st) => ({ serial: st.serial, layerStart: st.layerStart, layerEnd: st.layerEnd, predictedBytes: st.predictedBytes, peakRssBytes: meter.peakRssBytes.get(st.serial) ?? null })),
    });
    await run.writeRunJson(summary);
    emit({ type: 'run-finished', runId: run.runId, runDir: run.dir, ok: true, timeMs: Date.now() });
    return {
      runId: run.runId, runDir: run.dir, adapterDir: run.adapterDir, losses, evalLossBefore, evalLossAfter, heldOutLossOrt, samplesBefore, samplesAfter, tokPerSec, plan,
      checkpointDir: lastCheckpoint!.dir, interruptions,
    };
  } catch (e) {
    const error = o.signal?.aborted ? 'training was stopped' : explained.has(e) ? (e as Error).message : await explainFailure(e, agents);
    if (e instanceof Error && error !== e.message) e.message = error;
    Object.assign(summary, { status: 'failed', error });
    await run.writeRunJson(summary);
    emit({ type: 'run-finished', runId: run.runId, runDir: run.dir, ok: false, error, timeMs: Date.now() });
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await stopAgents();
  }
}
