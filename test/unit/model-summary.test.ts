// modelFacts (electron/core/model/model-summary.ts), what the Model step shows: the same model as a Hugging Face
// folder and as a GGUF file gives the same shape and parameter count (counted independently from config.json here),
// with each file's own storage types.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { folderSpmVocab, writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { openModel } from '../../electron/core/model/model-folder.js';
import { modelFacts } from '../../electron/core/model/model-summary.js';
import { repoRoot } from '../support/local-agent.js';

const modelDir = join(repoRoot(), 'models', 'stories260K');
const tmp = mkdtempSync(join(tmpdir(), 'confidant-summary-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Llama parameter count from config.json alone: embeddings, per-layer attention + MLP + 2 norms, final norm, head. */
function expectedParams(): number {
  const c = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, number | boolean>;
  const [C, F, V, L, H, KV] = ['hidden_size', 'intermediate_size', 'vocab_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads'].map((k) => c[k] as number);
  const D = C! / H!;
  const layer = C! * H! * D + 2 * C! * KV! * D + H! * D * C! + 3 * C! * F! + 2 * C!;
  return V! * C! + L! * layer + C! + (c.tie_word_embeddings === false ? V! * C! : 0);
}

test('an HF folder and its GGUF (F16) have the same facts but their own storage types', async () => {
  const hf = modelFacts(await openModel(modelDir));
  assert.equal(hf.source, 'hf');
  assert.equal(hf.modelType, 'llama');
  assert.equal(hf.paramCount, expectedParams());
  assert.deepEqual(hf.storage, [['F32', hf.paramCount]]);
  assert.equal(hf.ropeScaling, null);
  assert.equal(hf.slidingWindow, null);

  const ggufPath = join(tmp, 'stories260K-f16.gguf');
  const folder = await openModel(modelDir);
  await writeLlamaGguf(folder, ggufPath, { dtype: 'f16', vocab: await folderSpmVocab(folder) });
  const gguf = modelFacts(await openModel(ggufPath));
  assert.equal(gguf.source, 'gguf');
  for (const k of ['modelType', 'numLayers', 'hiddenSize', 'intermediateSize', 'numHeads', 'numKvHeads', 'vocabSize', 'paramCount', 'tiedEmbeddings'] as const) {
    assert.equal(gguf[k], hf[k], k);
  }
  // Matrices F16, norms (1-D) F32, as llama.cpp's converter stores them.
  assert.equal(gguf.storage[0]![0], 'F16');
  assert.deepEqual(gguf.storage.map(([t]) => t).sort(), ['F16', 'F32']);
  const norms = (2 * hf.numLayers + 1) * hf.hiddenSize;
  assert.deepEqual(gguf.storage.find(([t]) => t === 'F32'), ['F32', norms]);
});
