// The host arithmetic of a P-RGE step (zo-step.ts, zo-pipeline.ts): per-copy losses, projected gradients and the
// copy-major batch layout, checked against hand-computed values. The agent side is test/integration/zo-pipeline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { projectedGradients } from '../../electron/core/train/zo-step.js';
import { repeatCopies } from '../../electron/core/train/zo-pipeline.js';

test('g_i = (L_2i - L_2i+1) / (2 eps) with L_c = loss sum / weight sum', () => {
  // copies: q0+ = 30/10 = 3, q0- = 20/10 = 2, q1+ = 10/10 = 1, q1- = 14/10 = 1.4
  const { copyLosses, g } = projectedGradients([30, 20, 10, 14], [10, 10, 10, 10], 0.01);
  assert.deepEqual(copyLosses, [3, 2, 1, 1.4]);
  assert.ok(Math.abs(g[0] - 50) < 1e-9 && Math.abs(g[1] + 20) < 1e-9, `g = ${g}`);
});

test('projected gradients refuse odd copy counts, zero weights and non-finite results', () => {
  assert.throws(() => projectedGradients([1, 2, 3], [1, 1, 1], 0.01), /even/);
  assert.throws(() => projectedGradients([1, 2], [1, 0], 0.01), /copy 1 has no loss weight/);
  assert.throws(() => projectedGradients([Infinity, 2], [1, 1], 0.01), /query 0 is Infinity/);
});

test('copies are stacked copy-major: copy c is rows [c*b, (c+1)*b)', () => {
  assert.deepEqual([...repeatCopies(new Int32Array([1, 2, 3, 4]), 3)], [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
});
