// Checkpoint and resume through the whole job (runTrainJob over two real local agent processes): a run stopped after
// its step-3 checkpoint and resumed from its folder gives the same per-step losses and the same final LoRA as an
// uninterrupted run with the same seed. The reference is the uninterrupted run, computed independently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDeployer } from '../../electron/core/deploy/local-agent.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob, type TrainJobOptions } from '../../electron/core/train/job.js';
import { readLatestCheckpoint } from '../../electron/core/train/checkpoint.js';
import type { TrainEvent } from '../../electron/core/api/types.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const skip = needLocalAgent();
const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(Math.abs(x), Math.abs(y), 1e-12);

function options(dir: string, name: string, extra: Partial<TrainJobOptions>): TrainJobOptions {
  return {
    ...DEFAULT_TRAIN_SETTINGS,
    // One layout for every run compared here: a re-plan on noisy PROFILE timings could cut the model elsewhere.
    replan: false,
    steps: 6,
    microBatches: 2,
    microBatchSize: 2,
    seqLen: 32,
    evalSequences: 4,
    samplePrompts: [],
    // Enough steps past warm-up that the cosine schedule and AdamW moments matter after the resume point.
    warmupSteps: 2,
    checkpointEvery: 3,
    modelDir: join(repoRoot(), 'models/stories260K'),
    datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
    runsDir: join(dir, name),
    cacheDir: join(dir, `cache-${name}`),
    devices: [0, 1].map((i) => ({ serial: `local-${i}`, budgetBytes: 512 * 2 ** 20, speed: 1 })),
    deployer: new LocalDeployer(defaultAgentBinary()),
    ...extra,
  };
}

test('3 steps + resume for 3 more equals 6 steps straight: per-step losses and the final LoRA', { skip }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-resume-'));
  try {
    const straight = await runTrainJob(options(dir, 'straight', {}));
    assert.equal(straight.losses.length, 6);

    // Interrupted: stopped as soon as the step-3 checkpoint is complete (the cancel path a user or crash takes).
    const abort = new AbortController();
    const firstEvents: TrainEvent[] = [];
    await assert.rejects(
      runTrainJob(options(dir, 'interrupted', {
        signal: abort.signal,
        onEvent: (e) => {
          firstEvents.push(e);
          if (e.type === 'checkpoint' && e.step === 3) abort.abort();
        },
      })),
      /training was stopped/,
    );
    const [runId] = await readdir(join(dir, 'interrupted'));
    const runDir = join(dir, 'interrupted', runId!);
    const ck = await readLatestCheckpoint(runDir);
    assert.ok(ck, 'a checkpoint was written');
    assert.equal(ck.state.step, 3);
    assert.deepEqual(ck.state.data, { epoch: 1, cursor: 12 }, '3 steps x 4 sequences consumed in epoch 1');
    assert.ok(ck.tensors.some((t) => t.name.endsWith('.adam_v')), 'AdamW moments are in the checkpoint');
    assert.equal((await readFile(join(runDir, 'checkpoints/latest'), 'utf8')).trim(), 'step-3');

    // Resume with settings that would change the numbers if they were used: the checkpoint's must win.
    const events: TrainEvent[] = [];
    const resumed = await runTrainJob(options(dir, 'ignored', { resumeFrom: runDir, peakLr: 1, steps: 99, seed: 1, onEvent: (e) => events.push(e) }));
    assert.equal(resumed.runDir, runDir, 'the resume continues the same run folder');
    assert.equal(resumed.losses.length, 6);
    assert.deepEqual(events.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step), [4, 5, 6]);
    for (let i = 0; i < 6; i++) {
      assert.ok(rel(resumed.losses[i]!, straight.losses[i]!) < 1e-6, `step ${i + 1}: resumed ${resumed.losses[i]} vs straight ${straight.losses[i]}`);
    }
    // Step 4 onwards really trained (not copied): the loss moves.
    assert.notEqual(resumed.losses[3], resumed.losses[2]);

    const finalA = await readLatestCheckpoint(straight.runDir);
    const finalB = await readLatestCheckpoint(runDir);
    assert.equal(finalA!.state.step, 6);
    assert.equal(finalB!.state.step, 6);
    const byName = new Map(finalA!.tensors.map((t) => [t.name, t.tensor.data as Float32Array]));
    let maxDiff = 0;
    let compared = 0;
    for (const t of finalB!.tensors) {
      if (!t.name.endsWith('lora_B') && !t.name.endsWith('lora_A')) continue;
      const ref = byName.get(t.name)!;
      const got = t.tensor.data as Float32Array;
      for (let j = 0; j < got.length; j++) maxDiff = Math.max(maxDiff, Math.abs(got[j]! - ref[j]!));
      compared++;
    }
    assert.ok(compared > 0);
    assert.ok(maxDiff < 1e-6, `final LoRA max |resumed - straight| = ${maxDiff}`);
    const run = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8')) as { status: string; resumes: { fromStep: number }[]; losses: number[]; settings: { peakLr: number } };
    assert.equal(run.status, 'finished');
    assert.deepEqual(run.resumes.map((r) => r.fromStep), [3]);
    assert.equal(run.losses.length, 6);
    assert.equal(run.settings.peakLr, DEFAULT_TRAIN_SETTINGS.peakLr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
