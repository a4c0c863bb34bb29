// How a P-RGE step is cut into pipeline ops (electron/core/plan/zo-ops.ts) and what the planner makes of it: the
// default split against hand-worked divisors, and the simulated step of a forward-only pipeline of equal stages
// against the textbook (ops + S - 1) x op time, so fewer queries per op means a smaller fill and drain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkZoQueriesPerOp, defaultZoQueriesPerOp, MIN_ZO_OP_ROWS, opBatchSize, opsPerStep } from '../../electron/core/plan/zo-ops.js';
import { evaluateLayout, type DeviceProfile } from '../../electron/core/plan/partition.js';
import { stageMemory } from '../../electron/core/plan/memory.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';

test('default queries per op: the smallest divisor of q whose op keeps MIN_ZO_OP_ROWS rows', () => {
  assert.equal(MIN_ZO_OP_ROWS, 256);
  // 1 sequence x 64 tokens: 2 copies = 128 rows (too few), 4 copies = 256.
  assert.equal(defaultZoQueriesPerOp(4, 1, 64), 2);
  assert.equal(defaultZoQueriesPerOp(8, 1, 64), 2);
  // q = 3: divisors 1 and 3; 1 query is 128 rows, so all 3 in one op.
  assert.equal(defaultZoQueriesPerOp(3, 1, 64), 3);
  // Long sequences: one query (2 x 4 x 64 = 512 rows) is enough.
  assert.equal(defaultZoQueriesPerOp(4, 4, 64), 1);
  // Even all q together stay under the floor: one op.
  assert.equal(defaultZoQueriesPerOp(2, 1, 16), 2);
  assert.equal(defaultZoQueriesPerOp(1, 1, 8), 1);
});

test('ops per step and an op batch follow the split; backprop has one op per micro-batch', () => {
  const zo = { mode: 'zo' as const, microBatches: 8, microBatchSize: 1, seqLen: 64, zoQueries: 4 };
  assert.equal(opsPerStep(zo), 8);
  assert.equal(opBatchSize(zo), 8);
  assert.equal(opsPerStep({ ...zo, zoQueriesPerOp: 2 }), 16);
  assert.equal(opBatchSize({ ...zo, zoQueriesPerOp: 2 }), 4);
  assert.equal(opsPerStep({ ...zo, zoQueriesPerOp: 1 }), 32);
  assert.equal(opsPerStep({ ...zo, mode: 'backprop', zoQueriesPerOp: 1 }), 8);
  assert.equal(opBatchSize({ ...zo, mode: 'backprop', zoQueriesPerOp: 1 }), 1);
  assert.doesNotThrow(() => checkZoQueriesPerOp(4, 2));
  assert.throws(() => checkZoQueriesPerOp(4, 3), /queries per op must be a divisor of the 4 P-RGE queries, got 3/);
  assert.throws(() => checkZoQueriesPerOp(4, 0), /got 0/);
});

const c = { hiddenSize: 256, intermediateSize: 704, numHeads: 8, numKvHeads: 2, headDim: 32, vocabSize: 4096, numLayers: 4, attentionBias: false, tieWordEmbeddings: true } as ModelConfig;
const dev = (serial: string, layerMs: number): DeviceProfile => ({
  serial, budgetBytes: 2 ** 32, layerForwardMs: layerMs, layerBackwardMs: 0, headForwardMs: 0, headBackwardMs: 0, linkBytesPerSec: Infinity,
});

test('the planner prices the ops it will run: 2 equal stages fill and drain on one op, (ops + 1) x op time', () => {
  // A profile times one op at the run's op shape (profile-plan.ts), so layerForwardMs is per op whatever the split.
  const t = { loraRank: 8, microBatchSize: 1, seqLen: 64, microBatches: 8, mode: 'zo' as const, zoQueries: 4 };
  const two = [dev('a', 10), dev('b', 10)];
  const whole = evaluateLayout(c, two, t, [0, 2, 4]);
  assert.equal(whole.stepMs, (8 + 1) * 20); // 8 ops of 2 layers x 10 ms
  // The same step as 16 ops of half the copies, each timed at half: (16 + 1) x 10 ms.
  const halves = evaluateLayout(c, [dev('a', 5), dev('b', 5)], { ...t, zoQueriesPerOp: 2 }, [0, 2, 4]);
  assert.equal(halves.stepMs, (16 + 1) * 10);
  // Smaller ops also need less scratch on the phone.
  const shape = { layerStart: 0, layerEnd: 2, hasEmbedding: true, hasHead: false };
  const mem = (perOp: number) => stageMemory(c, shape, { ...t, zoQueriesPerOp: perOp, microBatchesInFlight: 1 }).scratchBytes;
  assert.ok(mem(2) < mem(4), `scratch with 2 queries per op ${mem(2)} vs 4: ${mem(4)}`);
});
