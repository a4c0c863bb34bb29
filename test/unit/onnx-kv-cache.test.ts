// The KV-cache decoder graph against the full-sequence graph (the reference: no cache, every position recomputed):
// logits equal at every position for stories260K and for a random GQA model with q/k/v biases, prompt chunks and
// single tokens mixed, batch 1 and 2; and the cache is one buffer written in place, with flat time per token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { buildDecoderGraph, MODEL_INPUT, MODEL_OUTPUT } from '../../electron/core/onnx/llama-kv-graph.js';
import type { WeightMap } from '../../electron/core/onnx/llama-ops.js';
import { KvCache } from '../../electron/core/onnx/ort-kv-cache.js';
import { KvDecoder } from '../../electron/core/onnx/ort-decode.js';
import { fullLogits, maxAbsDiff, randomLlama } from '../support/random-llama.js';
import { repoRoot } from '../support/local-agent.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');
const GOLDEN = join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json');
/**
 * |cached - full| <= 1e-6 x the largest |logit| (1e-5 for logits up to 10; stories260K's reach 22). Splitting
 * probs @ V into past and new parts sums in another order; onnxruntime's own full-sequence graph moves by 1.5e-5 on
 * stories260K between graph optimisation levels, so a tighter absolute bound would test rounding, not the cache.
 */
function assertClose(got: Float32Array, want: Float32Array, what: string): void {
  let scale = 1;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  const diff = maxAbsDiff(got, want);
  assert.ok(diff <= 1e-6 * scale, `${what}: max |cached - full| = ${diff}, bound ${1e-6 * scale}`);
}

async function decoderSession(c: ModelConfig, w: WeightMap, batch = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(buildDecoderGraph(c, w, { batch }), { logSeverityLevel: 3, intraOpNumThreads: 1 });
}

/**
 * Feeds `rows` (B rows of equal length) through the decoder in chunks of the given sizes and returns the logits of
 * every position, (B, T, V), assembled from the steps.
 */
async function cachedLogits(c: ModelConfig, session: ort.InferenceSession, rows: number[][], chunks: number[]): Promise<Float32Array> {
  const B = rows.length;
  const T = rows[0]!.length;
  const V = c.vocabSize;
  assert.equal(chunks.reduce((a, b) => a + b, 0), T);
  const cache = new KvCache({ numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, batch: B, maxLength: T });
  const out = new Float32Array(B * T * V);
  let pos = 0;
  for (const n of chunks) {
    const feeds = cache.pastFeeds();
    feeds[MODEL_INPUT] = new ort.Tensor('int64', BigInt64Array.from(rows.flatMap((r) => r.slice(pos, pos + n)), BigInt), [B, n]);
    const res = await session.run(feeds);
    cache.append(res, n);
    const logits = res[MODEL_OUTPUT]!.data as Float32Array;
    assert.deepEqual(res[MODEL_OUTPUT]!.dims, [B, n, V]);
    for (let b = 0; b < B; b++) out.set(logits.subarray(b * n * V, (b + 1) * n * V), (b * T + pos) * V);
    pos += n;
  }
  return out;
}

test('stories260K: KV-cache logits equal the full-sequence logits at every position', async () => {
  const folder = await openModelFolder(MODEL_DIR);
  const c = folder.config;
  const w = await readLlamaWeights(folder, { whole: true });
  const golden = (JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] }).ids;
  const ids = golden.slice(0, 48);
  const reference = await fullLogits(c, w, [ids]);
  const session = await decoderSession(c, w);
  try {
    // A 7-token prompt, 30 single tokens, then chunks of 3, 1 and 7 (a second prompt part after cached tokens).
    const chunks = [7, ...Array<number>(30).fill(1), 3, 1, 7];
    assertClose(await cachedLogits(c, session, [ids], chunks), reference, 'stories260K');
  } finally {
    await session.release();
  }
});

test('random GQA model with q/k/v biases (Qwen2 layout), batch 2: cached logits equal the full-sequence logits', async () => {
  // 6 query heads on 2 KV heads, head_dim 12 != hidden / heads, untied head, rope_theta 1e6.
  const { config: c, weights: w } = randomLlama({
    model_type: 'qwen2', hidden_size: 48, intermediate_size: 80, num_hidden_layers: 2, num_attention_heads: 6, num_key_value_heads: 2,
    head_dim: 12, vocab_size: 97, rope_theta: 1e6, rms_norm_eps: 1e-6, tie_word_embeddings: false, max_position_embeddings: 64,
  }, 7);
  assert.ok(w.has('model.layers.0.self_attn.q_proj.bias'), 'the model has q/k/v biases');
  const rows = [Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % 97), Array.from({ length: 20 }, (_, i) => (i * 13 + 5) % 97)];
  const reference = await fullLogits(c, w, rows);
  const chunks = [5, 1, 1, 1, 4, 1, 1, 6];
  for (const batch of [1, 2]) {
    const session = await decoderSession(c, w, batch);
    try {
      const got = batch === 2 ? await cachedLogits(c, session, rows, chunks) : await cachedLogits(c, session, [rows[0]!], chunks);
      const want = batch === 2 ? reference : reference.subarray(0, 20 * c.vocabSize);
      assertClose(got, want, `batch ${batch}`);
    } finally {
      await session.release();
    }
  }
  // The check can fail: a cache fed one position short (wrong RoPE offset and a missing key) is far off.
  const session = await decoderSession(c, w);
  try {
    const cache = new KvCache({ numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, batch: 1, maxLength: 20 });
    const decoder = new KvDecoder(session, cache, c.vocabSize);
    await decoder.forward(rows[0]!.slice(0, 5));
    cache.reset();
    await decoder.forward(rows[0]!.slice(0, 4));
    const shifted = await decoder.forward([rows[0]![5]!]);
    assert.ok(maxAbsDiff(shifted, reference.subarray(5 * c.vocabSize, 6 * c.vocabSize)) > 1e-2);
  } finally {
    await session.release();
  }
});

test('the KV cache is one buffer updated in place: each token writes only its own rows, time per token stays flat', async () => {
  // Big enough that copying the cache per token would show: 8 layers, 4 KV heads of 64, 1024 positions (32 MiB).
  const { config: c, weights: w } = randomLlama({
    hidden_size: 256, intermediate_size: 512, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4,
    vocab_size: 256, max_position_embeddings: 1024,
  }, 3);
  const session = await decoderSession(c, w);
  try {
    const cache = new KvCache({ numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, batch: 1, maxLength: 1024 });
    const decoder = new KvDecoder(session, cache, c.vocabSize);
    const buffer = cache.buffer;
    const view = new Float32Array(buffer);
    const rowFloats = c.numLayers * 2 * c.numKvHeads * c.headDim; // one position's keys and values
    await decoder.forward([1, 2, 3, 4]);
    const stepMs: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const checkWrites = i % 97 === 0;
      const before = checkWrites ? view.slice() : undefined;
      const t0 = performance.now();
      await decoder.forward([(i * 31) % c.vocabSize]);
      stepMs.push(performance.now() - t0);
      assert.equal(cache.buffer, buffer, 'the cache buffer was replaced');
      if (before) {
        let changed = 0;
        for (let k = 0; k < view.length; k++) if (view[k] !== before[k]) changed++;
        // Exactly one position's rows change (a value may by chance be rewritten equal, hence <=), nothing else.
        assert.ok(changed > rowFloats / 2 && changed <= rowFloats, `step ${i}: ${changed} floats changed, one position has ${rowFloats}`);
      }
    }
    assert.equal(cache.length, 1004);
    // The 20th percentile: robust to other processes taking the CPU now and then.
    const typical = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 5)]!;
    const early = typical(stepMs.slice(10, 110));
    const late = typical(stepMs.slice(-100));
    console.log(`time per token: ${early.toFixed(3)} ms at ~60 positions, ${late.toFixed(3)} ms at ~950 positions`);
    // Attention grows with the context (it reads every cached row), the rest does not; a per-token copy of the
    // preallocated cache (32 MiB) would cost several ms at any position, so compare with that too.
    assert.ok(late < early * 2, `time per token grew from ${early.toFixed(3)} to ${late.toFixed(3)} ms`);
  } finally {
    await session.release();
  }
});
