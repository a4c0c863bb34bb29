// The pipeline simulator (electron/core/plan/simulator.ts) against hand computations: the 1F1B bubble
// (p-1)/(m+p-1) for uniform stages without transfer, a two-stage case with transfers timed by hand, forward-only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bubbleFraction, simulate } from '../../electron/core/plan/simulator.js';

const uniform = (p: number, f: number, b: number) => Array.from({ length: p }, () => ({ forwardMs: f, backwardMs: b, sendNextMs: 0, sendPrevMs: 0 }));

test('1F1B bubble fraction equals (p-1)/(m+p-1) for uniform stages and zero transfer', () => {
  for (const [p, m] of [[2, 4], [4, 8], [3, 3], [8, 16], [5, 2]]) {
    const r = simulate(uniform(p, 2, 3), m, 'backprop');
    assert.ok(Math.abs(r.stepMs - (m + p - 1) * 5) < 1e-9, `p=${p} m=${m}: step ${r.stepMs}`);
    assert.ok(Math.abs(bubbleFraction(r) - (p - 1) / (m + p - 1)) < 1e-12, `p=${p} m=${m}: bubble ${bubbleFraction(r)}`);
  }
});

test('two stages with transfers: hand-timed 1F1B', () => {
  // Stage 0: F=1 B=2, send 0.5 forward; stage 1: F=2 B=3, gradient back 0.25; m=2.
  // s0 ops F0 F1 B0 B1; s1 ops F0 B0 F1 B1.
  // s0: F0 [0,1], F1 [1,2]. s1: F0 ready 1.5 -> [1.5,3.5]; B0 [3.5,6.5]; F1 ready 2.5 -> [6.5,8.5]; B1 [8.5,11.5].
  // s0: B0 ready 6.75 -> [6.75,8.75]; B1 ready 11.75 -> [11.75,13.75].
  const r = simulate([{ forwardMs: 1, backwardMs: 2, sendNextMs: 0.5, sendPrevMs: 0 }, { forwardMs: 2, backwardMs: 3, sendNextMs: 0, sendPrevMs: 0.25 }], 2, 'backprop');
  assert.equal(r.stepMs, 13.75);
  assert.deepEqual(r.timelines[1].map((x) => [x.kind, x.micro, x.startMs, x.endMs]), [['F', 0, 1.5, 3.5], ['B', 0, 3.5, 6.5], ['F', 1, 6.5, 8.5], ['B', 1, 8.5, 11.5]]);
  assert.deepEqual(r.timelines[0].map((x) => x.startMs), [0, 1, 6.75, 11.75]);
});

test('forward-only (P-RGE copies as micro-batches): slowest stage paces, plus fill', () => {
  // Stages F = 1, 3, 2 with 0.5 sends; m = 4: the last stage's micro i starts after stage 1's (1.5 + 3(i+1)) + 0.5.
  const r = simulate([
    { forwardMs: 1, backwardMs: 0, sendNextMs: 0.5, sendPrevMs: 0 },
    { forwardMs: 3, backwardMs: 0, sendNextMs: 0.5, sendPrevMs: 0 },
    { forwardMs: 2, backwardMs: 0, sendNextMs: 0, sendPrevMs: 0 },
  ], 4, 'zo', 0.1);
  // stage 1 ends micro 3 at 1.5 + 12 = 13.5; stage 2 runs it [14, 16]; + ZO_STEP 0.1.
  assert.equal(r.stepMs, 16.1);
});
