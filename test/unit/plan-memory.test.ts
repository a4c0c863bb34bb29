// Tests the planner's base-weight bytes (electron/core/plan/memory.ts) against the stage packer's real layout
// (stage-pack.ts planStageLayout) for every weight format, on the bundled model (whose 172-wide MLP makes the 4-bit
// formats fall back to f16 there) and on a TinyLlama-shaped config: the planner must count what the phone maps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { planStageLayout } from '../../electron/core/model/stage-pack.js';
import { WEIGHT_FORMATS } from '../../electron/core/model/quantize.js';
import { stageBytes, stageWeightBytes } from '../../electron/core/plan/memory.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { repoRoot } from '../support/local-agent.js';

test('predicted base-weight bytes equal the packed stage tensors, every format and stage shape', async () => {
  const folder = await openModelFolder(join(repoRoot(), 'models/stories260K'));
  const c = folder.config;
  const shapes = [
    { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: true },
    { layerStart: 0, layerEnd: 2, hasEmbedding: true, hasHead: false },
    { layerStart: 2, layerEnd: c.numLayers, hasEmbedding: false, hasHead: true },
  ];
  for (const f of WEIGHT_FORMATS) {
    for (const s of shapes) {
      const layout = planStageLayout(folder, s, { weightFormat: f });
      const packed = layout.tensors.reduce((sum, t) => sum + t.nbytes, 0);
      assert.equal(stageWeightBytes(c, s, f), packed, `${f} layers [${s.layerStart}, ${s.layerEnd})`);
    }
  }
});

test('4-bit base weights shrink a TinyLlama stage about 7x and the planned total with it', () => {
  const c = {
    hiddenSize: 2048, intermediateSize: 5632, numHeads: 32, numKvHeads: 4, headDim: 64, vocabSize: 32000, numLayers: 22,
    attentionBias: false, tieWordEmbeddings: false,
  } as ModelConfig;
  const s = { layerStart: 0, layerEnd: 11, hasEmbedding: true, hasHead: false };
  const f32 = stageWeightBytes(c, s, 'f32');
  const q4 = stageWeightBytes(c, s, 'q4_0');
  assert.ok(f32 / q4 > 6.9 && f32 / q4 < 7.2, `f32 / q4_0 = ${f32 / q4}`); // 32 floats (128 B) -> 18 B
  const t = { loraRank: 8, microBatchSize: 1, seqLen: 256, microBatchesInFlight: 2 };
  assert.equal(stageBytes(c, s, { ...t, weightFormat: 'f32' }) - stageBytes(c, s, { ...t, weightFormat: 'q4_0' }), f32 - q4);
});
