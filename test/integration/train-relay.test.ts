// f16 relay of activations and gradients between stages (FORWARD flags bit 2) against f32 relay, through the whole
// job over two real local agents: the relayed bytes per step halve exactly, and training converges the same (the
// f32 run is the reference: held-out loss after training within a small tolerance, per-step losses close).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalDeployer } from '../../electron/core/deploy/local-agent.js';
import { DEFAULT_TRAIN_SETTINGS, runTrainJob } from '../../electron/core/train/job.js';
import type { RelayDtype, TrainEvent } from '../../electron/core/api/types.js';
import { defaultAgentBinary, needLocalAgent, repoRoot } from '../support/local-agent.js';

const skip = needLocalAgent();

async function train(dir: string, relay: RelayDtype) {
  const events: TrainEvent[] = [];
  const result = await runTrainJob({
    ...DEFAULT_TRAIN_SETTINGS,
    replan: false, // the f16 and f32 runs must cut the model at the same place to be compared
    steps: 10,
    evalSequences: 8,
    samplePrompts: [],
    relay,
    modelDir: join(repoRoot(), 'models/stories260K'),
    datasetPath: join(repoRoot(), 'datasets/demo-stories/stories.txt'),
    runsDir: join(dir, relay),
    cacheDir: join(dir, `cache-${relay}`),
    devices: [0, 1, 2].map((i) => ({ serial: `local-${i}`, budgetBytes: 512 * 2 ** 20, speed: 1 })),
    deployer: new LocalDeployer(defaultAgentBinary()),
    onEvent: (e) => events.push(e),
  });
  const timelines = events.filter((e): e is Extract<TrainEvent, { type: 'timeline' }> => e.type === 'timeline');
  return { result, timelines, devices: events.filter((e) => e.type === 'device-step') };
}

test('f16 relay: half the relayed bytes, converges like f32', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-relay-'));
  try {
    const f32 = await train(dir, 'f32');
    const f16 = await train(dir, 'f16');
    const bytes32 = f32.timelines.map((e) => e.relayBytes);
    const bytes16 = f16.timelines.map((e) => e.relayBytes);
    t.diagnostic(`relay bytes per step f32 ${bytes32[0]}, f16 ${bytes16[0]}; held-out after f32 ${f32.result.evalLossAfter}, f16 ${f16.result.evalLossAfter}`);
    assert.equal(bytes32.length, 10);
    assert.ok(bytes32[0]! > 0);
    for (let i = 0; i < 10; i++) assert.equal(bytes16[i]! * 2, bytes32[i]!, `step ${i + 1}: f16 relays half the bytes`);
    assert.ok(f16.timelines.every((e) => e.relayDtype === 'f16'));
    // The agents' own byte counters see the halving too (the middle stage reads and writes only relayed tensors).
    const mid = (evs: TrainEvent[]) => evs.find((e) => e.type === 'device-step' && e.serial === 'local-1' && e.step === 2) as Extract<TrainEvent, { type: 'device-step' }>;
    assert.ok(mid(f16.devices).bytesOut < 0.6 * mid(f32.devices).bytesOut, `middle stage bytes out f16 ${mid(f16.devices).bytesOut} vs f32 ${mid(f32.devices).bytesOut}`);

    // Same start (same seed, same adapter): training moved both the same way.
    assert.ok(f32.result.evalLossAfter < f32.result.evalLossBefore - 0.01, 'the reference run learned');
    assert.equal(f16.result.evalLossBefore, f32.result.evalLossBefore, 'held-out loss is measured alike (f32 relay) before training');
    assert.ok(Math.abs(f16.result.evalLossAfter - f32.result.evalLossAfter) < 0.01, `held-out after f16 ${f16.result.evalLossAfter} vs f32 ${f32.result.evalLossAfter}`);
    for (let i = 0; i < 10; i++) {
      const d = Math.abs(f16.result.losses[i]! - f32.result.losses[i]!);
      assert.ok(d < 0.01, `step ${i + 1}: loss f16 ${f16.result.losses[i]} vs f32 ${f32.result.losses[i]}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
