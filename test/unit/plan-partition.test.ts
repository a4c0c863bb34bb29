// The partitioner (electron/core/plan/partition.ts) against hand-worked splits: speed-proportional layer counts,
// the device order search putting the fast phone where it pays, memory forcing a split, and the infeasible
// message naming the short device and re-checked remedies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partitionLayers, planPipeline, PlanError, type DeviceProfile } from '../../electron/core/plan/partition.js';
import { stageBytes } from '../../electron/core/plan/memory.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';

const c = { hiddenSize: 256, intermediateSize: 704, numHeads: 8, numKvHeads: 2, headDim: 32, vocabSize: 4096, numLayers: 12, attentionBias: false, tieWordEmbeddings: true } as ModelConfig;
const GiB = 2 ** 30;
const dev = (serial: string, layerMs: number, budget = 4 * GiB, head = 0): DeviceProfile => ({
  serial, budgetBytes: budget, layerForwardMs: layerMs, layerBackwardMs: 2 * layerMs, headForwardMs: head, headBackwardMs: 0, linkBytesPerSec: Infinity,
});
const t = { loraRank: 8, microBatchSize: 1, seqLen: 64, microBatches: 4 };

test('a 2x faster phone gets 2x the layers (12 layers: 8 + 4), bottleneck 3 x 8 = 24 ms', () => {
  const p = planPipeline(c, [dev('slow', 2), dev('fast', 1)], t);
  const bySerial = Object.fromEntries(p.stages.map((s) => [s.serial, s.layerEnd - s.layerStart]));
  assert.deepEqual(bySerial, { fast: 8, slow: 4 });
  assert.equal(p.bottleneckMs, 24); // fast: 8 layers x 3 ms; slow: 4 x 6 = 24
  // 1F1B with two equal 24 ms stages (F 8, B 16) and m = 4: (m + p - 1) x 24 = 120 ms.
  assert.equal(p.stepMs, 120);
});

test('device order: the head goes to the phone that has time for it', () => {
  // Equal phones, but the LM head costs 6 ms: whichever is last takes fewer layers; bottleneck minimal either way.
  const p = planPipeline(c, [dev('a', 1, 4 * GiB, 6), dev('b', 1, 4 * GiB, 6)], t);
  // last stage: 3n + 6, first: 3(12 - n): best n = 5 -> max(21, 21) = 21.
  assert.equal(p.bottleneckMs, 21);
  assert.equal(p.stages[1].layerEnd - p.stages[1].layerStart, 5);
});

test('memory budget forces a worse split; every stage fits its budget', () => {
  const full = { ...t, microBatchesInFlight: 2 };
  const share = (a: number, b: number, s: number) => stageBytes(c, { layerStart: a, layerEnd: b, hasEmbedding: s === 0, hasHead: s === 1 }, { ...full, microBatchesInFlight: 2 - s });
  const budget = share(0, 3, 0) + 1; // the fast phone may hold 3 layers (as first stage) at most
  const p = planPipeline(c, [dev('fast', 1, budget), dev('slow', 2)], t, { keepOrder: true });
  assert.deepEqual(p.stages.map((s) => s.layerEnd - s.layerStart), [3, 9]);
  for (const s of p.stages) assert.ok(s.predictedBytes <= s.budgetBytes);
});

test('infeasible: names the short device and says which remedies would fit (re-checked)', () => {
  const one = stageBytes(c, { layerStart: 0, layerEnd: 12, hasEmbedding: true, hasHead: true }, { ...t, microBatchesInFlight: 1 });
  const q4 = stageBytes(c, { layerStart: 0, layerEnd: 12, hasEmbedding: true, hasHead: true }, { ...t, microBatchesInFlight: 1, weightFormat: 'q4_0' });
  const budget = Math.floor((one + q4) / 2); // between: f32 does not fit, q4_0 does
  assert.throws(() => planPipeline(c, [dev('p1', 1, budget)], t), (e: Error) => {
    assert.ok(e instanceof PlanError);
    assert.match(e.message, /p1 has .* GiB for training, its even share .* needs/);
    assert.match(e.message, /4-bit weights \(--weight-format q4_0\): would fit/);
    assert.match(e.message, /another phone like p1 .*: would fit/);
    return true;
  });
  assert.throws(() => planPipeline(c, [dev('p1', 1, 1024)], t), /q4_0\): would still not fit/);
});

test('partitionLayers (job.ts adapter) keeps the order and splits by relative speed', () => {
  const st = partitionLayers(c, [{ serial: 'x', budgetBytes: 4 * GiB, speed: 1 }, { serial: 'y', budgetBytes: 4 * GiB, speed: 1 }], { loraRank: 8, microBatchSize: 1, seqLen: 64 });
  assert.deepEqual(st.map((s) => s.serial), ['x', 'y']);
  // head = 4096 / (3 x 704) = 1.94 layers: y (last) gets 5 layers, x 7 (max(7, 6.94)).
  assert.deepEqual(st.map((s) => [s.layerStart, s.layerEnd]), [[0, 7], [7, 12]]);
});
