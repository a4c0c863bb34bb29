// A whole run whose plan comes from PROFILE measurements, on two virtual phones attached to a private real adb
// server (AdbDeployer: the USB phone's path), each phone on its own host core as a real phone has its own: run.json
// records the measured profiles and head splits, the simulator's step time and bubble, and after training the
// measured ones; the prediction is checked against the run's own step times and each agent's peak RSS. The model is
// random-weight but big enough (hidden 512, MLP 1408, 4 layers) that layer compute dominates a step. The redeploy
// test below uses local agents (LocalDeployer) to fake one slow phone.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdb } from '../../electron/core/adb/client.js';
import { AdbDeployer } from '../../electron/core/deploy/adb-deployer.js';
import { startVirtualPhones, stopVirtualPhones } from '../../electron/core/virtual-phone/manager.js';
import { parseCpuList } from '../../electron/core/virtual-phone/host-cpus.js';
import { startTestAdbServer, TEST_ADB_PORT, type TestAdbServer } from '../support/adb-server.js';
import { LocalDeployer } from '../../electron/core/deploy/local-agent.js';
import type { StageDeployer } from '../../electron/core/deploy/stage-deployer.js';
import type { ProfileResult } from '../../electron/core/protocol/profile.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import type { TrainEvent } from '../../electron/core/api/types.js';
import { writeRandomLlama } from '../bench/random-model.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const skip = needLocalAgent();
const server = skip ? skip : startTestAdbServer(TEST_ADB_PORT + 9);
const adbSkip = skip || (typeof server === 'string' ? server : undefined);
const phonesRoot = mkdtempSync(join(tmpdir(), 'confidant-plan-measured-phones-'));

after(async () => {
  await stopVirtualPhones(phonesRoot).catch(() => undefined);
  if (typeof server !== 'string') server.stop();
  rmSync(phonesRoot, { recursive: true, force: true });
});

/**
 * Raw measured / predicted median step time. Each phone has its own host core, and all stages PROFILE at once as
 * they train, but on this 2-core machine the host's relay, the adb server and the phones' own adb processes run on
 * the agents' cores too: ops ran 1.02-1.21x slower in training than profiled, and the ratio came out 1.07-1.24
 * (median 1.11) over nine runs (the goal is within 15%). The range only catches a broken model: below 0.7 PROFILE
 * over-counts, above 1.6 something the simulator leaves out costs a third of a step.
 */
const STEP_RATIO_RANGE = [0.7, 1.6] as const;
/**
 * The schedule check, contention removed: measured step / (predicted step x the ops' own slowdown, i.e. each agent's
 * STATS busy time per step over its PROFILE-predicted compute). What is left is the simulator's 1F1B timing, the
 * transfers and per-op overheads it charges to each op, and the optimiser's round trips (0.98-1.07 here).
 */
const SCHEDULE_RATIO_RANGE = [0.8, 1.3] as const;
/** Per device |predicted - measured peak RSS| / measured (the memory model's calibration claims <= 5.3%). */
const MEMORY_TOLERANCE = 0.1;

interface RunJson {
  planning: {
    profiles: Array<{ serial: string; layerForwardMs: number; layerBackwardMs: number; headForwardMs: number; agentBaseBytes: number; linkBytesPerSec: number; linkSource: string }>;
    headSplits: Array<{ serial: string; gpuKvGroups: number; gpuMlpCols: number; applied: boolean; secondary?: string; why?: string }>;
    predictedStepMs: number;
    predictedBubble: number;
    theoreticalBubble: number;
    predictedBytes: Array<{ serial: string; bytes: number }>;
    replan: { redeployed: boolean; reason: string };
  };
  measured: { medianStepMs: number; bubble: number; busyMs: Array<{ serial: string; medianBusyMsPerStep: number; overPredicted: number }>; peakRssBytes: Array<{ serial: string; bytes: number; predictedBytes: number }> };
}

/** The test's random-weight model: compute-dominated (hidden 512, MLP 1408, 4 layers), vocab 512 for the demo tokenizer. */
async function writeModel(modelDir: string): Promise<void> {
  await writeRandomLlama(modelDir, {
    key: 'plan-measured', description: '', hiddenSize: 512, intermediateSize: 1408, numHeads: 8, numKvHeads: 2, headDim: 64,
    vocabSize: 512, numLayers: 4, tieWordEmbeddings: false,
  }, 11);
  // The bundled model's tokenizer (vocab 512), so the demo text tokenizes into real ids.
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(repoRoot(), 'models/stories260K', f), join(modelDir, f));
}

test('plan from PROFILE measurements on virtual phones: profiles and splits recorded, prediction vs measured step time, bubble and memory', { skip: adbSkip, timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-plan-measured-'));
  try {
    const modelDir = join(dir, 'model');
    await writeModel(modelDir);
    const srv = server as TestAdbServer;
    const phones = await startVirtualPhones({ count: 2, rootDir: phonesRoot, ramMb: 2048, adb: srv.endpoint });
    const adb = await connectAdb(srv.endpoint);
    // Each phone runs on its own host core (this machine has at least 2): checked on the phone process itself.
    for (const p of phones) {
      const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(await readFile(`/proc/${p.pid}/status`, 'utf8'))![1]!;
      assert.deepEqual(parseCpuList(allowed), p.hostCpus, `${p.serial} runs on ${allowed}`);
    }
    assert.equal(new Set(phones.flatMap((p) => p.hostCpus ?? [])).size, phones.flatMap((p) => p.hostCpus ?? []).length, 'no shared core');
    const events: TrainEvent[] = [];
    const microBatches = 4;
    const result = await runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      steps: 6,
      microBatches,
      microBatchSize: 2,
      seqLen: 128,
      evalSequences: 2,
      sampleTokens: 1,
      checkpointEvery: 100,
      modelDir,
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir: join(dir, 'runs'),
      cacheDir: join(dir, 'cache'),
      devices: phones.map((p) => ({ serial: p.serial, budgetBytes: 1024 * 2 ** 20, speed: 1 })),
      deployer: new AdbDeployer(adb, { x86_64: defaultAgentBinary() }),
      onEvent: (e) => events.push(e),
    });
    const run = JSON.parse(await readFile(join(result.runDir, 'run.json'), 'utf8')) as RunJson;
    const { planning, measured } = run;
    const rows: string[] = [`phones on host cores ${phones.map((p) => `${p.serial}: ${p.hostCpus?.join(',') ?? 'all (not pinned)'}`).join(', ')}`];

    // Profiles and head splits of both devices.
    assert.deepEqual(planning.profiles.map((p) => p.serial).sort(), phones.map((p) => p.serial).sort());
    for (const p of planning.profiles) {
      assert.ok(p.layerForwardMs > 0 && p.layerBackwardMs > 0 && p.headForwardMs > 0, JSON.stringify(p));
      assert.ok(p.agentBaseBytes > 1 * 2 ** 20, `idle RSS ${p.agentBaseBytes}`);
      rows.push(`${p.serial}: layer fwd ${p.layerForwardMs.toFixed(1)} ms bwd ${p.layerBackwardMs.toFixed(1)} ms head fwd ${p.headForwardMs.toFixed(1)} ms, ` +
        `idle RSS ${(p.agentBaseBytes / 2 ** 20).toFixed(1)} MiB, link ${(p.linkBytesPerSec / 1e6).toFixed(0)} MB/s (${p.linkSource})`);
    }
    assert.equal(planning.headSplits.length, 2);
    for (const h of planning.headSplits) {
      rows.push(`${h.serial}: split kv ${h.gpuKvGroups} mlp ${h.gpuMlpCols} on ${h.secondary ?? 'none'} applied ${h.applied}${h.why ? ` (${h.why})` : ''}`);
      // A non-zero split left unapplied says why (here: PoCL's OpenCL device is this CPU, or too small a gain).
      if (!h.applied && h.secondary && (h.gpuKvGroups > 0 || h.gpuMlpCols > 0)) assert.match(h.why ?? '', /CPU backend's cores|gain/, JSON.stringify(h));
    }
    rows.push(`replan: ${planning.replan.reason}`);

    // Step time: the run's median (also re-derived here from the step events) against the simulator's prediction.
    const stepMs = events.flatMap((e) => (e.type === 'step' && e.stepMs !== undefined ? [e.stepMs] : [])).sort((a, b) => a - b);
    assert.equal(stepMs.length, 6);
    const eventMedian = (stepMs[2]! + stepMs[3]!) / 2;
    assert.ok(Math.abs(eventMedian - measured.medianStepMs) < 1e-6, `${eventMedian} vs ${measured.medianStepMs}`);
    const ratio = measured.medianStepMs / planning.predictedStepMs;
    rows.push(`step: predicted ${planning.predictedStepMs.toFixed(0)} ms, measured median ${measured.medianStepMs.toFixed(0)} ms, ratio ${ratio.toFixed(2)}`);
    const slowdown = measured.busyMs.reduce((a, b) => a + b.overPredicted, 0) / measured.busyMs.length;
    const scheduleRatio = ratio / slowdown;
    rows.push(`ops ran ${measured.busyMs.map((b) => `${b.serial} ${b.overPredicted.toFixed(2)}x`).join(', ')} slower than profiled (agents' busy time); ` +
      `step / (predicted x ${slowdown.toFixed(2)}) = ${scheduleRatio.toFixed(2)}`);
    rows.push(`bubble: predicted ${(planning.predictedBubble * 100).toFixed(1)}%, measured ${(measured.bubble * 100).toFixed(1)}%, theory (p-1)/(m+p-1) ${(planning.theoreticalBubble * 100).toFixed(1)}%`);
    assert.ok(Math.abs(planning.theoreticalBubble - 1 / (microBatches + 1)) < 1e-12);
    assert.ok(measured.bubble >= 0 && measured.bubble < 1, `measured bubble ${measured.bubble}`);

    // Memory per device: the deployed plan's prediction (with the measured idle RSS) against the agent's VmHWM.
    let worstMemory = 0;
    for (const m of measured.peakRssBytes) {
      const predicted = planning.predictedBytes.find((p) => p.serial === m.serial)!.bytes;
      const err = (predicted - m.bytes) / m.bytes;
      worstMemory = Math.max(worstMemory, Math.abs(err));
      rows.push(`${m.serial}: predicted ${(predicted / 2 ** 20).toFixed(1)} MiB, peak RSS ${(m.bytes / 2 ** 20).toFixed(1)} MiB, error ${(err * 100).toFixed(1)}%`);
    }
    process.stdout.write(rows.map((r) => `# ${r}\n`).join(''));

    const details = events.flatMap((e) => (e.type === 'phase' ? [`${e.phase}: ${e.detail}`] : []));
    assert.ok(details.some((d) => d.startsWith('planning:')) && details.some((d) => d.startsWith('measured:')), details.join(' | '));
    assert.ok(ratio >= STEP_RATIO_RANGE[0] && ratio <= STEP_RATIO_RANGE[1], `measured/predicted step ${ratio.toFixed(2)} outside ${STEP_RATIO_RANGE}:\n${rows.join('\n')}`);
    assert.equal(measured.busyMs.length, 2);
    assert.ok(scheduleRatio >= SCHEDULE_RATIO_RANGE[0] && scheduleRatio <= SCHEDULE_RATIO_RANGE[1], `schedule ratio ${scheduleRatio.toFixed(2)} outside ${SCHEDULE_RATIO_RANGE}:\n${rows.join('\n')}`);
    assert.equal(measured.peakRssBytes.length, 2);
    assert.ok(worstMemory < MEMORY_TOLERANCE, `memory error ${(worstMemory * 100).toFixed(1)}% >= 10%:\n${rows.join('\n')}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * The redeploy path. Local agents on one machine cannot be made reliably unequal (one thread is as fast as two on
 * this loaded machine; the reference backend is 30-90x slower, too slow for a test), so this deployer reports
 * local-slow's PROFILE times 4x: everything else (agents, stage files, training) is real. With 4 layers the deployed
 * 2 + 2 has local-slow's 2 x 4 = 8 layer-units as bottleneck; local-fast alone (4 x 1, no transfer, no bubble) is
 * predicted faster than any split that keeps the slow phone, so the planner leaves it out (measured 552 vs 949 ms).
 */
class SlowProfileDeployer implements StageDeployer {
  readonly description = 'local agents, one reporting 4x PROFILE times';
  private readonly inner = new LocalDeployer(defaultAgentBinary());
  async deploy(...args: Parameters<StageDeployer['deploy']>) {
    const agent = await this.inner.deploy(...args);
    if (args[0] !== 'local-slow') return agent;
    const client = new Proxy(agent.client, {
      get(target, key) {
        if (key === 'profile') {
          return async (...a: Parameters<typeof target.profile>): Promise<ProfileResult> => {
            const p = await target.profile(...a);
            return { ...p, layers: p.layers.map((l) => ({ ...l, forwardMs: 4 * l.forwardMs, backwardMs: 4 * l.backwardMs })) };
          };
        }
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
      },
    });
    return { ...agent, client };
  }
}

test('a measured plan predicted >10% faster is redeployed: the 4x slower phone is left out, training goes on on the other', { skip, timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-plan-redeploy-'));
  try {
    const modelDir = join(dir, 'model');
    await writeModel(modelDir);
    const events: TrainEvent[] = [];
    const result = await runTrainJob({
      ...DEFAULT_TRAIN_SETTINGS,
      steps: 3, microBatches: 4, microBatchSize: 2, seqLen: 128, evalSequences: 2, sampleTokens: 1, checkpointEvery: 100,
      modelDir,
      datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
      runsDir: join(dir, 'runs'),
      cacheDir: join(dir, 'cache'),
      devices: ['local-slow', 'local-fast'].map((serial) => ({ serial, budgetBytes: 1024 * 2 ** 20, speed: 1 })),
      deployer: new SlowProfileDeployer(),
      onEvent: (e) => events.push(e),
    });
    const run = JSON.parse(await readFile(join(result.runDir, 'run.json'), 'utf8')) as RunJson & { plan: { stages: Array<{ serial: string; layerStart: number; layerEnd: number }> } };
    const rows = [`replan: ${run.planning.replan.reason}`, `plan: ${run.plan.stages.map((s) => `${s.serial}[${s.layerStart},${s.layerEnd})`).join(' ')}`];
    for (const m of run.measured.peakRssBytes) rows.push(`${m.serial}: predicted ${(m.predictedBytes / 2 ** 20).toFixed(1)} MiB, peak RSS ${(m.bytes / 2 ** 20).toFixed(1)} MiB`);
    process.stdout.write(rows.map((r) => `# ${r}\n`).join(''));
    assert.equal(run.planning.replan.redeployed, true, rows.join('\n'));
    assert.deepEqual(run.plan.stages.map((s) => [s.serial, s.layerStart, s.layerEnd]), [['local-fast', 0, 4]], rows.join('\n'));
    assert.match(run.planning.replan.reason, /local-slow is left out: it would slow the pipeline/, rows.join('\n'));
    const phases = events.flatMap((e) => (e.type === 'phase' ? [`${e.phase}: ${e.detail}`] : []));
    assert.ok(phases.some((d) => /^plan: re-planned on measured profiles.*redeploying/.test(d)), phases.join(' | '));
    assert.equal(phases.filter((d) => d.startsWith('deploy: packing')).length, 2, 'deployed twice');
    assert.deepEqual(run.measured.peakRssBytes.map((m) => m.serial), ['local-fast'], 'only the phone that trained is measured');
    for (const m of run.measured.peakRssBytes) {
      assert.ok(Math.abs(m.predictedBytes - m.bytes) / m.bytes < MEMORY_TOLERANCE, `memory after the redeploy:\n${rows.join('\n')}`);
    }
    assert.equal(result.losses.length, 3);
    assert.ok(result.losses.every(Number.isFinite), `losses ${result.losses}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
