// Generation with OrtLanguageModel (KV-cache graph in the ORT worker, tokens streamed back): greedy stories260K
// reproduces llama2.c's golden ids; sampling is a function of the seed and top-p -> 0 is greedy; a LoRA adapter
// gives what the merged weights W + scale * B @ A (computed here, naively) give; tokens stream before the end;
// cancel, abort and breaking out of the loop stop it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import type { WeightMap } from '../../electron/core/onnx/llama-ops.js';
import { OrtLanguageModel, type GenerationOptions, type TokenStream } from '../../electron/core/onnx/ort-generate.js';
import { randomLlama, randomTensor } from '../support/random-llama.js';
import { repoRoot } from '../support/local-agent.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');
const GOLDEN = join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json');
const GREEDY: GenerationOptions = { maxNewTokens: 40, temperature: 0, topP: 1, seed: 0, stopIds: [] };

async function collect(stream: TokenStream): Promise<number[]> {
  const ids: number[] = [];
  for await (const id of stream) ids.push(id);
  return ids;
}

async function withModel<T>(c: ModelConfig, w: WeightMap, o: Parameters<typeof OrtLanguageModel.create>[2], fn: (m: OrtLanguageModel) => Promise<T>): Promise<T> {
  const m = await OrtLanguageModel.create(c, w, { threads: 1, ...o });
  try {
    return await fn(m);
  } finally {
    await m.close();
  }
}

test('greedy generation of stories260K with the KV cache reproduces the golden ids; sampling follows the seed', async () => {
  const golden = (JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] }).ids;
  const folder = await openModelFolder(MODEL_DIR);
  await withModel(folder.config, await readLlamaWeights(folder, { whole: true }), {}, async (m) => {
    const stream = m.generate([golden[0]!], { ...GREEDY, maxNewTokens: golden.length - 1 });
    const ids = [golden[0]!, ...(await collect(stream))];
    const firstDiff = ids.findIndex((id, i) => id !== golden[i]);
    assert.equal(firstDiff, -1, `first difference at position ${firstDiff}: ${ids[firstDiff]} vs golden ${golden[firstDiff]}`);
    const stats = await stream.done;
    assert.equal(stats.reason, 'max-new-tokens');
    assert.equal(stats.newTokens, golden.length - 1);
    console.log(`stories260K: ${(stats.newTokens - 1) / (stats.decodeMs / 1000)} tokens/s with the KV cache (session.run only, 1 thread)`);

    const prompt = golden.slice(0, 5);
    const sampled = (seed: number, topP = 0.9) => collect(m.generate(prompt, { ...GREEDY, temperature: 1, topP, seed }));
    const a = await sampled(1);
    assert.deepEqual(await sampled(1), a, 'the same seed gave another continuation');
    assert.notDeepEqual(await sampled(2), a, 'another seed gave the same 40 tokens');
    // Top-p so small that only the most likely token is kept: greedy, whatever the seed and temperature.
    assert.deepEqual(await sampled(3, 1e-9), golden.slice(5, 45));
    // Stop ids end generation and are not emitted.
    const stopAt = golden[12]!;
    const untilStop = m.generate(prompt, { ...GREEDY, stopIds: [stopAt] });
    const stopped = await collect(untilStop);
    assert.deepEqual(stopped, golden.slice(5, golden.indexOf(stopAt, 5)));
    assert.equal((await untilStop.done).reason, 'stop-id');
  });
});

test('with a LoRA adapter the output equals that of the merged weights W + scale * B @ A', async () => {
  const { config: c, weights: base } = randomLlama({
    hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 61,
    max_position_embeddings: 128, tie_word_embeddings: false,
  }, 11);
  const rank = 4;
  const scale = 16 / rank;
  const withLora = new Map(base);
  const merged = new Map(base);
  const modules: [string, number, number][] = [
    ['self_attn.q_proj', c.hiddenSize, c.numHeads * c.headDim], ['self_attn.v_proj', c.hiddenSize, c.numKvHeads * c.headDim],
    ['self_attn.o_proj', c.numHeads * c.headDim, c.hiddenSize], ['mlp.down_proj', c.intermediateSize, c.hiddenSize],
  ];
  let seed = 300;
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const [m, inDim, outDim] of modules) {
      const path = `model.layers.${layer}.${m}`;
      const a = randomTensor(rank * inDim, seed++, 0.3); // [r, in]
      const b = randomTensor(outDim * rank, seed++, 0.3); // [out, r]
      withLora.set(`${path}.lora_A`, a);
      withLora.set(`${path}.lora_B`, b);
      const w = Float32Array.from(base.get(`${path}.weight`)!); // [out, in]
      for (let o = 0; o < outDim; o++) for (let i = 0; i < inDim; i++) {
        let s = 0;
        for (let r = 0; r < rank; r++) s += b[o * rank + r]! * a[r * inDim + i]!;
        w[o * inDim + i]! += scale * s;
      }
      merged.set(`${path}.weight`, w);
    }
  }
  const prompt = [1, 5, 9, 2];
  const run = (w: WeightMap, loraScale?: number) => withModel(c, w, { loraScale }, (m) => collect(m.generate(prompt, { ...GREEDY, maxNewTokens: 60 })));
  const adapted = await run(withLora, scale);
  assert.deepEqual(adapted, await run(merged));
  assert.notDeepEqual(adapted, await run(base), 'the adapter changed nothing: the comparison above would not see a missing adapter');
  assert.deepEqual(await run(withLora), await run(base), 'without loraScale the adapters are ignored');
});

test('tokens stream as they are produced; cancel, an abort signal and breaking out of the loop stop generation', async () => {
  const { config: c, weights: w } = randomLlama({
    hidden_size: 128, intermediate_size: 256, num_hidden_layers: 4, num_attention_heads: 4, vocab_size: 300, max_position_embeddings: 4096,
  }, 5);
  await withModel(c, w, { maxLength: 4096 }, async (m) => {
    const long = { ...GREEDY, maxNewTokens: 4000, temperature: 1, seed: 9 };
    // Streaming: tokens arrive one by one while `done` is still pending.
    const stream = m.generate([1, 2, 3], { ...long, maxNewTokens: 200 });
    let finished = false;
    void stream.done.then(() => (finished = true));
    let seenBeforeEnd = 0;
    for await (const id of stream) {
      assert.ok(id >= 0 && id < c.vocabSize);
      if (!finished) seenBeforeEnd++;
    }
    assert.equal((await stream.done).newTokens, 200);
    assert.ok(seenBeforeEnd >= 100, `only ${seenBeforeEnd} of 200 tokens arrived before generation ended`);

    const cancelled = m.generate([1, 2, 3], long);
    let n = 0;
    for await (const _ of cancelled) if (++n === 5) cancelled.cancel();
    const stats = await cancelled.done;
    assert.equal(stats.reason, 'cancelled');
    assert.ok(stats.newTokens < 100, `${stats.newTokens} tokens after cancelling at 5`);

    const abort = new AbortController();
    const aborted = m.generate([1, 2, 3], long, abort.signal);
    setTimeout(() => abort.abort(), 30);
    const abortedIds = await collect(aborted);
    assert.equal((await aborted.done).reason, 'cancelled');
    assert.ok(abortedIds.length < 4000);

    const broken = m.generate([1, 2, 3], long);
    for await (const _ of broken) break;
    assert.equal((await broken.done).reason, 'cancelled');

    // The model is free again, and a prompt longer than the cache is refused with a clear error.
    assert.equal((await collect(m.generate([4, 5], { ...GREEDY, maxNewTokens: 3 }))).length, 3);
    await assert.rejects(collect(m.generate(Array<number>(4097).fill(1), GREEDY)), /KV cache holds 4096 positions/);
  });
});
