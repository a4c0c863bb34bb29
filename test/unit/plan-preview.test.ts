// The Plan step's numbers (electron/core/plan/plan-preview.ts): a given layout is checked for gaps, overlaps and
// strangers with messages that say what to fix; its memory is the memory model's for exactly those stages (worked
// out here with stageBytes); an over-budget stage is flagged, and refused when a run is asked to train on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutCuts, plannedFromLayout, previewPlan, type LayoutStage } from '../../electron/core/plan/plan-preview.js';
import { PlanError, type PlanDevice } from '../../electron/core/plan/partition.js';
import { stageBytes } from '../../electron/core/plan/memory.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';

const c = { hiddenSize: 256, intermediateSize: 704, numHeads: 8, numKvHeads: 2, headDim: 32, vocabSize: 4096, numLayers: 12, attentionBias: false, tieWordEmbeddings: true } as ModelConfig;
const GiB = 2 ** 30;
const phones: PlanDevice[] = [
  { serial: 'a', budgetBytes: 2 * GiB, speed: 1 },
  { serial: 'b', budgetBytes: 2 * GiB, speed: 1 },
  { serial: 'c', budgetBytes: 2 * GiB, speed: 1 },
];
const t = { loraRank: 8, microBatchSize: 2, seqLen: 64, microBatches: 4, mode: 'backprop' as const, weightFormat: 'f32' as const };
const stage = (serial: string, layerStart: number, layerEnd: number): LayoutStage => ({ serial, layerStart, layerEnd });

test('a layout with a gap, an overlap, a stranger, a repeat, an empty stage or a short end is refused, saying what to fix', () => {
  const refuse = (layout: LayoutStage[], re: RegExp) => assert.throws(() => layoutCuts(c, phones, layout), re);
  refuse([stage('a', 0, 5), stage('b', 6, 12)], /stage 2 \(b\) starts at layer 6 but must start at 5/);
  refuse([stage('a', 0, 6), stage('b', 5, 12)], /stage 2 \(b\) starts at layer 5 but must start at 6/);
  refuse([stage('a', 0, 6), stage('x', 6, 12)], /stage 2 names x, which is not one of the chosen phones \(a, b, c\)/);
  refuse([stage('a', 0, 6), stage('a', 6, 12)], /a appears in two stages/);
  refuse([stage('a', 0, 6), stage('b', 6, 6), stage('c', 6, 12)], /stage 2 \(b\) holds no layers/);
  refuse([stage('a', 0, 6), stage('b', 6, 11)], /covers layers 0-10 but the model has 12/);
  refuse([stage('a', 0, 6), stage('b', 6, 13)], /ends at layer 13 but the model has 12 layers/);
  refuse([], /no stages/);
  const ok = layoutCuts(c, phones, [stage('c', 0, 4), stage('a', 4, 12)]);
  assert.deepEqual(ok.cuts, [0, 4, 12]);
  assert.deepEqual(ok.ordered.map((d) => d.serial), ['c', 'a']);
});

test('a given layout is predicted as given: its stages, the memory model on exactly them, and the phone it leaves out', () => {
  const p = previewPlan(c, phones, t, [stage('b', 0, 9), stage('a', 9, 12)]);
  assert.equal(p.source, 'given');
  assert.deepEqual(p.stages.map((s) => [s.serial, s.layerStart, s.layerEnd, s.hasEmbedding, s.hasHead]), [['b', 0, 9, true, false], ['a', 9, 12, false, true]]);
  // 1F1B with 2 stages: stage 0 keeps 2 micro-batches in flight, stage 1 one.
  const inFlight = [2, 1];
  p.stages.forEach((s, i) => {
    const expected = stageBytes(c, s, { ...t, microBatchesInFlight: inFlight[i] });
    assert.equal(s.predictedBytes, expected);
    assert.equal(s.fits, true);
  });
  // The 9-layer stage is the slower one (the other has 3 layers and the LM head, about 1.5 layers' work): it waits less.
  assert.ok(p.stages[0].forwardMs > p.stages[1].forwardMs, `forward ${p.stages.map((s) => s.forwardMs)}`);
  assert.ok(p.stages[1].idleFraction > p.stages[0].idleFraction, `idle ${p.stages.map((s) => s.idleFraction)}`);
  assert.deepEqual(p.leftOut, [{ serial: 'c', reason: 'left out of the edited layout' }]);
  assert.equal(p.theoreticalBubble, 1 / 5); // (p - 1) / (m + p - 1) = 1 / 5
  assert.ok(p.stepMs > 0 && p.tokensPerSec > 0);
  // The planner's own split of the same two phones is predicted faster (the point of the Plan step's suggestion).
  const suggested = previewPlan(c, phones.slice(0, 2), t);
  assert.ok(suggested.stepMs < p.stepMs, `${suggested.stepMs} vs ${p.stepMs}`);
});

test('the suggested plan uses the planner and fits; an edited layout over a budget is flagged, and a run refuses it', () => {
  const suggested = previewPlan(c, phones, t);
  assert.equal(suggested.source, 'suggested');
  assert.equal(suggested.stages.reduce((n, s) => n + s.layerEnd - s.layerStart, 0), 12);
  assert.ok(suggested.stages.every((s) => s.fits));

  // A phone that can hold about 4 layers as the first stage, asked to hold 10.
  const four = stageBytes(c, { layerStart: 0, layerEnd: 4, hasEmbedding: true, hasHead: false }, { ...t, microBatchesInFlight: 2 });
  const small: PlanDevice[] = [{ serial: 'small', budgetBytes: four + 1, speed: 1 }, phones[1]];
  const layout = [stage('small', 0, 10), stage('b', 10, 12)];
  const p = previewPlan(c, small, t, layout);
  assert.deepEqual(p.stages.map((s) => s.fits), [false, true]);
  assert.throws(() => plannedFromLayout(c, small, t, layout), (e: unknown) => e instanceof PlanError && /small \(layers 0-9\) needs \d+ MiB but may use \d+ MiB/.test(e.message));
  // The same phone holding 4 layers is accepted, with the memory the preview showed.
  const fits = plannedFromLayout(c, small, t, [stage('small', 0, 4), stage('b', 4, 12)]);
  assert.equal(fits[0].predictedBytes, four);
});
