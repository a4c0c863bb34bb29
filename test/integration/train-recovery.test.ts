// Phone loss mid-run, through the real adb server and two virtual phones running the real agent: one phone is
// killed during training; the run pauses, re-plans on the phone left, redeploys, restores the last checkpoint and
// finishes there. run.json records the interruption, no checkpoint is lost, and the steps before the checkpoint
// keep their losses. With no phone left, the run fails saying so and keeps its checkpoint.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectAdb, type Adb } from '../../electron/core/adb/client.js';
import { AdbDeployer } from '../../electron/core/deploy/adb-deployer.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob, type TrainJobOptions } from '../../electron/core/train/job.js';
import { readLatestCheckpoint } from '../../electron/core/train/checkpoint.js';
import type { TrainEvent } from '../../electron/core/api/types.js';
import { startVirtualPhones, stopVirtualPhones, type VirtualPhoneRecord } from '../../electron/core/virtual-phone/manager.js';
import { startTestAdbServer, type TestAdbServer } from '../support/adb-server.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const server = startTestAdbServer();
const skip = typeof server === 'string' ? server : needLocalAgent();
const srv = server as TestAdbServer;

describe('phone loss during training', { skip }, () => {
  let root = '';
  let adb: Adb;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'confidant-recovery-'));
    adb = await connectAdb(srv.endpoint);
  });

  after(async () => {
    if (root) {
      for (const sub of await readdir(root).catch(() => [] as string[])) await stopVirtualPhones(join(root, sub), { adb: srv.endpoint }).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    }
    srv.stop();
  });

  const options = (name: string, phones: VirtualPhoneRecord[], extra: Partial<TrainJobOptions>): TrainJobOptions => ({
    ...DEFAULT_TRAIN_SETTINGS,
    steps: 12,
    checkpointEvery: 3,
    evalSequences: 4,
    samplePrompts: [],
    modelDir: join(repoRoot(), 'models/stories260K'),
    datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
    runsDir: join(root, `runs-${name}`),
    cacheDir: join(root, `cache-${name}`),
    devices: phones.map((p) => ({ serial: p.serial, budgetBytes: 2 ** 30, speed: 1 })),
    deployer: new AdbDeployer(adb, { x86_64: defaultAgentBinary() }),
    ...extra,
  });

  test('a phone killed mid-run: the run finishes on the remaining phone from the last checkpoint', async (t) => {
    const [a, b] = (await startVirtualPhones({ count: 2, rootDir: join(root, 'kill'), ramMb: 2048, adb: srv.endpoint })) as [VirtualPhoneRecord, VirtualPhoneRecord];
    const events: TrainEvent[] = [];
    let killedAt = 0;
    const result = await runTrainJob(options('kill', [a, b], {
      onEvent: (e) => {
        events.push(e);
        // After the step-3 checkpoint, from a timer: the kill lands while step 5's requests are in flight.
        if (e.type === 'step' && e.step === 4 && !killedAt) {
          setTimeout(() => {
            killedAt = Date.now();
            process.kill(b.pid, 'SIGKILL');
          }, 20);
        }
      },
    }));
    assert.ok(killedAt > 0, 'a phone was killed during training');
    const paused = events.find((e) => e.type === 'paused') as Extract<TrainEvent, { type: 'paused' }>;
    const resumed = events.find((e) => e.type === 'resumed') as Extract<TrainEvent, { type: 'resumed' }>;
    t.diagnostic(`paused at step ${paused?.step}: ${paused?.reason.split('\n')[0]}`);
    assert.ok(paused && !paused.giveUp, 'the run paused and did not give up');
    assert.deepEqual(paused.lostSerials, [b.serial]);
    assert.equal(resumed.fromStep, 3, 'went on from the step-3 checkpoint');
    assert.deepEqual(resumed.plan.stages.map((s) => s.serial), [a.serial], 're-planned on the remaining phone');
    assert.equal(resumed.plan.stages[0]!.layerStart, 0);
    assert.equal(resumed.plan.stages[0]!.layerEnd, 5, 'the remaining phone holds the whole model');

    assert.equal(result.losses.length, 12);
    assert.ok(result.losses.every(Number.isFinite));
    assert.ok(result.evalLossAfter < result.evalLossBefore, `held-out loss ${result.evalLossBefore} -> ${result.evalLossAfter}`);
    // The steps before the checkpoint are the ones trained on two phones, kept as they were.
    const firstLosses = events.filter((e): e is Extract<TrainEvent, { type: 'step' }> => e.type === 'step' && e.timeMs < paused.timeMs).map((e) => e.loss);
    assert.deepEqual(result.losses.slice(0, 3), firstLosses.slice(0, 3));

    const run = JSON.parse(readFileSync(join(result.runDir, 'run.json'), 'utf8'));
    assert.equal(run.status, 'finished');
    assert.equal(run.interruptions.length, 1);
    assert.deepEqual(run.interruptions[0].lostSerials, [b.serial]);
    assert.equal(run.interruptions[0].resumedFromStep, 3);
    assert.match(run.interruptions[0].error, new RegExp(b.serial.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.deepEqual(run.plan.stages.map((s: { serial: string }) => s.serial), [a.serial]);
    for (const step of [3, 6, 9, 12]) assert.ok(existsSync(join(result.runDir, 'checkpoints', `step-${step}`, 'lora.bin')), `checkpoint step-${step} kept`);
    assert.equal((await readLatestCheckpoint(result.runDir))!.state.step, 12);
  });

  test('losing the only phone: a clear failure that keeps the checkpoint', async () => {
    const [a] = (await startVirtualPhones({ count: 1, rootDir: join(root, 'only'), ramMb: 2048, adb: srv.endpoint })) as [VirtualPhoneRecord];
    let killed = false;
    const job = runTrainJob(options('only', [a], {
      steps: 400,
      onEvent: (e) => {
        if (e.type === 'checkpoint' && e.step === 3 && !killed) {
          killed = true;
          setTimeout(() => process.kill(a.pid, 'SIGKILL'), 20);
        }
      },
    }));
    await assert.rejects(job, (err: Error) => {
      assert.match(err.message, /no phone remains/);
      assert.match(err.message, /checkpoint \(step 3\) is kept/);
      assert.match(err.message, /--resume/);
      return true;
    });
    const [runId] = await readdir(join(root, 'runs-only'));
    const runDir = join(root, 'runs-only', runId!);
    const run = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
    assert.equal(run.status, 'failed');
    assert.equal(run.interruptions.length, 1);
    assert.equal(run.interruptions[0].resumedFromStep, null);
    assert.equal((await readLatestCheckpoint(runDir))!.state.step, 3);
  });
});
