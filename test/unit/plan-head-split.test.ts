// The backend scheduler (electron/core/plan/head-split.ts) on hand-built PROFILE replies, against splits worked
// out by hand: balanced attention and MLP, a GPU too slow to help, the merge cost, and no secondary at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseHeadSplit } from '../../electron/core/plan/head-split.js';
import type { ProfileResult } from '../../electron/core/protocol/profile.js';

function profile(cpu: { g: number; c: number; layer: number }, gpu?: { g: number; c: number }): ProfileResult {
  const backends: ProfileResult['backends'] = [{ name: 'cpu', role: 'primary', device: 'x' }];
  if (gpu) backends.push({ name: 'opencl', role: 'secondary', device: 'y' });
  return {
    shape: { batch: 1, seqLen: 128 }, reps: 1, backends,
    layers: [{ layer: 0, backend: 'cpu', forwardMs: cpu.layer, backwardMs: 0 }],
    heads: [{ backend: 'cpu', attentionForwardMsPerGroup: cpu.g, attentionBackwardMsPerGroup: 0 }, ...(gpu ? [{ backend: 'opencl', attentionForwardMsPerGroup: gpu.g, attentionBackwardMsPerGroup: 0 }] : [])],
    mlp: [{ backend: 'cpu', forwardMsPer32Cols: cpu.c, backwardMsPer32Cols: 0 }, ...(gpu ? [{ backend: 'opencl', forwardMsPer32Cols: gpu.c, backwardMsPer32Cols: 0 }] : [])],
  };
}

test('equal-speed GPU takes half the groups and columns; layer time as computed by hand', () => {
  // 4 groups x 1 ms, 8 blocks (256 cols) x 0.5 ms, rest 1 ms: layer 4 + 4 + 1 = 9 ms.
  // Split: attention max(2, 2) + merge 0.1, MLP max(2, 2) + 0.1, rest 1 -> 5.2 ms.
  const s = chooseHeadSplit({ numKvHeads: 4, intermediateSize: 256 }, profile({ g: 1, c: 0.5, layer: 9 }, { g: 1, c: 0.5 }), { mode: 'zo', mergeMs: 0.1 });
  assert.deepEqual([s.gpuKvGroups, s.gpuMlpCols], [2, 128]);
  assert.ok(Math.abs(s.layerMsUnsplit - 9) < 1e-12 && Math.abs(s.layerMsSplit - 5.2) < 1e-12, `${s.layerMsSplit}`);
});

test('a GPU 3x slower takes a quarter: 8 groups, 3 ms vs 1 ms each -> 2 groups (max(6, 6))', () => {
  const s = chooseHeadSplit({ numKvHeads: 8, intermediateSize: 64 }, profile({ g: 1, c: 1, layer: 12 }, { g: 3, c: 10 }), { mode: 'zo', mergeMs: 0 });
  assert.equal(s.gpuKvGroups, 2);
  assert.equal(s.gpuMlpCols, 0, 'the MLP on a 10x slower GPU does not pay');
  assert.equal(s.layerMsSplit, 12 - 2); // attention 8 -> 6; MLP 2 and rest 2 unchanged
});

test('a merge cost larger than the gain keeps the layer unsplit; no secondary gives (0, 0)', () => {
  const p = profile({ g: 1, c: 1, layer: 4 }, { g: 1, c: 1 });
  const s = chooseHeadSplit({ numKvHeads: 2, intermediateSize: 32 }, p, { mode: 'zo', mergeMs: 1.5 });
  assert.deepEqual([s.gpuKvGroups, s.gpuMlpCols, s.layerMsSplit], [0, 0, 4]); // split would be max(1,1)+1.5 = 2.5 > 2
  const none = chooseHeadSplit({ numKvHeads: 2, intermediateSize: 32 }, profile({ g: 1, c: 1, layer: 4 }));
  assert.deepEqual([none.gpuKvGroups, none.gpuMlpCols, none.secondary], [0, 0, undefined]);
});

test('training counts backward too: merge is paid twice', () => {
  const p = profile({ g: 1, c: 1, layer: 4 }, { g: 1, c: 1 });
  p.layers[0].backwardMs = 4; p.heads[0].attentionBackwardMsPerGroup = 1; p.heads[1].attentionBackwardMsPerGroup = 1;
  p.mlp[0].backwardMsPer32Cols = 1; p.mlp[1].backwardMsPer32Cols = 1;
  // 2 groups x 2 ms: unsplit 4, split max(2, 2) + 2 x 0.5 = 3: split wins; layer 8 -> 8 - 4 + 3 = 7.
  const s = chooseHeadSplit({ numKvHeads: 2, intermediateSize: 32 }, p, { mergeMs: 0.5 });
  assert.equal(s.gpuKvGroups, 1);
  assert.equal(s.layerMsSplit, 7);
});
