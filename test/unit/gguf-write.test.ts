// Checks the GGUF writer against independent readers: node-llama-cpp's GGUF parser reads back the metadata and
// tensor infos; llama.cpp runs stories260K written by gguf-llama.ts and reproduces the golden greedy ids; where
// shared/ has the independently converted stories260K GGUF (from llama2.c's interleaved weights), our permuted
// q/k tensors equal its bytes. Not the LoRA export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGguf } from '../../electron/core/model/gguf-write.js';
import { folderSpmVocab, permuteRopeRows, writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { minimalSpmVocab, parseSentencePieceModel } from '../../electron/core/model/gguf-vocab.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { buildModelGraph, MODEL_INPUT, MODEL_OUTPUT, readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { OrtRunner } from '../../electron/core/onnx/ort-runner.js';
import { f16BitsToF32 } from '../../electron/core/util/f16.js';
import { repoRoot } from '../support/local-agent.js';
import { needLlamaCpp } from '../support/llama-cpp.js';
import type { Token } from 'node-llama-cpp';

const ROOT = repoRoot();
const MODEL_DIR = join(ROOT, 'models', 'stories260K');
const GOLDEN = join(ROOT, 'test/fixtures/golden/stories260K-greedy-200.json');
const llamaCpp = await needLlamaCpp();
const skipLlama = typeof llamaCpp === 'string' ? llamaCpp : false;

/** exp(x - max) / sum, in double precision. */
function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = Float64Array.from(logits, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  return out.map((v) => v / sum);
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-gguf-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('permuteRopeRows is convert_hf_to_gguf.py permute (reshape(n_head, 2, D/2, cols).swapaxes(1, 2))', () => {
  // 2 heads, head_dim 4, 1 column: rows [h0: a0 a1 b0 b1, h1: ...] -> [a0 b0 a1 b1, ...].
  const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
  assert.deepEqual([...permuteRopeRows(w, 2, 4, 1)], [0, 2, 1, 3, 10, 12, 11, 13]);
  const w2 = Float32Array.from({ length: 2 * 4 * 2 }, (_, i) => i); // 2 columns move with their row
  assert.deepEqual([...permuteRopeRows(w2, 2, 4, 2)].slice(0, 8), [0, 1, 4, 5, 2, 3, 6, 7]);
});

test('tokenizer.model of stories260K parses into the pieces tokenizer.json lists', async () => {
  const v = parseSentencePieceModel(await readFile(join(MODEL_DIR, 'tokenizer.model')), 512);
  const hf = JSON.parse(await readFile(join(MODEL_DIR, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  assert.equal(v.tokens.length, 512);
  for (const [piece, id] of Object.entries(hf.model.vocab)) assert.equal(v.tokens[id], piece, `id ${id}`);
  assert.deepEqual(v.types.slice(0, 4), [2, 3, 3, 6]); // <unk>, <s>, </s>, <0x00>
});

test('a generic GGUF file reads back through node-llama-cpp\'s parser', { skip: skipLlama }, async () => {
  if (typeof llamaCpp === 'string') return;
  await withTempDir(async (dir) => {
    const path = join(dir, 'generic.gguf');
    const a = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
    const b = Float32Array.from([1, -0.5, 65504, 1e-3]);
    const { bytes } = await writeGguf(path, {
      metadata: [
        ['general.architecture', { type: 'string', value: 'test' }],
        ['test.count', { type: 'u32', value: 7 }],
        ['test.big', { type: 'u64', value: 2n ** 40n }],
        ['test.scale', { type: 'f32', value: 0.25 }],
        ['test.flag', { type: 'bool', value: true }],
        ['test.list', { type: 'array', itemType: 'i32', values: [-1, 2, 3] }],
        ['test.names', { type: 'array', itemType: 'string', values: ['x', 'ÿz'] }],
      ],
      tensors: [
        { name: 'a', ne: [3, 2], type: 'F32', data: a },
        { name: 'b', ne: [4], type: 'F16', data: async () => b },
      ],
    });
    assert.equal(bytes % 32, 0);
    const info = await llamaCpp.lib.readGgufFileInfo(path, { readTensorInfo: true });
    assert.equal(info.version, 3);
    const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
    assert.equal(md.general!.architecture, 'test');
    assert.equal(md.test!.count, 7);
    assert.equal(BigInt(md.test!.big as number | bigint), 2n ** 40n);
    assert.equal(md.test!.scale, 0.25);
    assert.equal(md.test!.flag, true);
    assert.deepEqual(md.test!.list, [-1, 2, 3]);
    assert.deepEqual(md.test!.names, ['x', 'ÿz']);
    const tensors = info.fullTensorInfo!;
    assert.deepEqual(tensors.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType]), [['a', [3, 2], 0], ['b', [4], 1]]);
    const fh = await open(path, 'r');
    try {
      const ra = Buffer.alloc(24);
      await fh.read(ra, 0, 24, Number(tensors[0]!.fileOffset));
      assert.deepEqual([...new Float32Array(ra.buffer, ra.byteOffset, 6)], [...a]);
      const rb = Buffer.alloc(8);
      await fh.read(rb, 0, 8, Number(tensors[1]!.fileOffset));
      assert.equal(Number(tensors[1]!.fileOffset) % 32, 0);
      assert.deepEqual([0, 1, 2, 3].map((i) => f16BitsToF32(rb.readUInt16LE(2 * i))), [1, -0.5, 65504, 0.0010004043579101562]);
    } finally {
      await fh.close();
    }
  });
});

test('stories260K written as GGUF runs in llama.cpp with the golden greedy ids and ONNX-equal next-token probabilities', { skip: skipLlama }, async () => {
  if (typeof llamaCpp === 'string') return;
  const golden = JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] };
  const folder = await openModelFolder(MODEL_DIR);
  const c = folder.config;
  await withTempDir(async (dir) => {
    const path = join(dir, 'stories260K-f32.gguf');
    await writeLlamaGguf(folder, path, { dtype: 'f32', vocab: await folderSpmVocab(folder) });
    const model = await llamaCpp.llama.loadModel({ modelPath: path, gpuLayers: 0 });
    try {
      // The vocabulary survived: llama.cpp's SPM tokenizer gives the golden story's first ids.
      assert.deepEqual(model.tokenize('Once upon a time'), golden.ids.slice(1, 5));
      // F32 attention end to end: llama.cpp's default F16 KV cache, or its flash attention (F16 on the CPU), alone
      // moves these logits by ~1.5e-2; with both off they agree with onnxruntime to ~1e-5.
      const context = await model.createContext({
        contextSize: 512, batchSize: 512, threads: 1, sequences: 1,
        flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
      });
      try {
        const seq = context.getSequence();
        // Greedy generation from BOS.
        const generated: number[] = [];
        for await (const token of seq.evaluate([golden.ids[0]! as Token], { temperature: 0 })) {
          generated.push(token);
          if (generated.length === 20) break;
        }
        assert.deepEqual(generated, golden.ids.slice(1, 21));
        // Teacher-forced over the whole golden sequence: top-1 at every position, probabilities next to
        // onnxruntime's.
        await seq.clearHistory();
        const prompt = golden.ids.slice(0, -1);
        // node-llama-cpp 3.21 gives probabilities, not logits: a plain softmax over the whole vocabulary when
        // temperature is 1 and top-k/top-p/min-p keep every token. Compared with the softmax of ORT's logits.
        const fullSoftmax = { temperature: 1, topK: c.vocabSize, topP: 1, minP: 0, seed: 1 };
        const outs = await seq.controlledEvaluate(prompt.map((t) => [t as Token, { generateNext: { probabilities: true, options: fullSoftmax } }] as const));
        const ort = await OrtRunner.create(buildModelGraph(c, await readLlamaWeights(folder, { whole: true })), { intraOpNumThreads: 1 });
        let onnxLogits: Float32Array;
        try {
          const r = await ort.run({ [MODEL_INPUT]: { type: 'int64', dims: [1, prompt.length], data: BigInt64Array.from(prompt.map(BigInt)) } });
          onnxLogits = r.outputs[MODEL_OUTPUT]!.data as Float32Array;
        } finally {
          await ort.close();
        }
        let maxDiff = 0;
        prompt.forEach((_, pos) => {
          const probs = outs[pos]?.next.probabilities;
          assert.ok(probs, `no probabilities at position ${pos}`);
          assert.equal(probs.size, c.vocabSize, `position ${pos}: every token has a probability`);
          assert.equal(probs.entries().next().value![0], golden.ids[pos + 1], `top-1 at position ${pos}`);
          const ortProbs = softmax(onnxLogits.subarray(pos * c.vocabSize, (pos + 1) * c.vocabSize));
          for (const [token, p] of probs) maxDiff = Math.max(maxDiff, Math.abs(p - ortProbs[token]!));
        });
        assert.ok(maxDiff < 1e-5, `max |llama.cpp - onnxruntime| probability = ${maxDiff}`);
      } finally {
        await context.dispose();
      }
    } finally {
      await model.dispose();
    }
    const f16 = join(dir, 'stories260K-f16.gguf');
    await writeLlamaGguf(folder, f16, { dtype: 'f16', vocab: await folderSpmVocab(folder) });
    const m16 = await llamaCpp.llama.loadModel({ modelPath: f16, gpuLayers: 0 });
    try {
      const ctx = await m16.createContext({ contextSize: 512, threads: 1 });
      const generated: number[] = [];
      for await (const token of ctx.getSequence().evaluate([golden.ids[0]! as Token], { temperature: 0 })) {
        generated.push(token);
        if (generated.length === 20) break;
      }
      await ctx.dispose();
      assert.deepEqual(generated, golden.ids.slice(1, 21), 'F16 GGUF greedy ids');
    } finally {
      await m16.dispose();
    }
  });
});

test('a random model with the minimal vocab loads in llama.cpp', { skip: skipLlama }, async () => {
  if (typeof llamaCpp === 'string') return;
  const v = minimalSpmVocab(300);
  assert.equal(v.tokens[10], '<0x07>');
  assert.equal(new Set(v.tokens).size, 300);
  // The writer with this vocab is exercised end to end by npm run bench (random weights); here: stories260K's
  // weights with the made-up vocab, whose ids then mean nothing but the model still loads and runs.
  await withTempDir(async (dir) => {
    const folder = await openModelFolder(MODEL_DIR);
    const path = join(dir, 'minimal-vocab.gguf');
    await writeLlamaGguf(folder, path, { dtype: 'f32', vocab: minimalSpmVocab(folder.config.vocabSize) });
    const model = await llamaCpp.llama.loadModel({ modelPath: path, gpuLayers: 0 });
    try {
      const ctx = await model.createContext({ contextSize: 64, threads: 1 });
      const golden = JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] };
      const generated: number[] = [];
      for await (const token of ctx.getSequence().evaluate([1 as Token], { temperature: 0 })) {
        generated.push(token);
        if (generated.length === 5) break;
      }
      await ctx.dispose();
      assert.deepEqual(generated, golden.ids.slice(1, 6), 'same weights, same ids, whatever the vocab strings');
    } finally {
      await model.dispose();
    }
  });
});

const SHARED_GGUF = ['shared', '../shared'].map((p) => join(ROOT, p, 'models/stories260K-gguf/stories260K-f32.gguf')).find((p) => existsSync(p));

test('q/k permutation equals the independently converted GGUF from llama2.c weights (shared/)', { skip: skipLlama || (!SHARED_GGUF && 'shared/models/stories260K-gguf is not in this checkout') }, async () => {
  if (typeof llamaCpp === 'string' || !SHARED_GGUF) return;
  await withTempDir(async (dir) => {
    const ours = join(dir, 'ours.gguf');
    await writeLlamaGguf(MODEL_DIR, ours, { dtype: 'f32', vocab: await folderSpmVocab(await openModelFolder(MODEL_DIR)) });
    const a = await llamaCpp.lib.readGgufFileInfo(ours, { readTensorInfo: true });
    const b = await llamaCpp.lib.readGgufFileInfo(SHARED_GGUF, { readTensorInfo: true });
    const theirs = new Map(b.fullTensorInfo!.map((t) => [t.name, t]));
    const fa = await open(ours, 'r');
    const fb = await open(SHARED_GGUF, 'r');
    try {
      for (const t of a.fullTensorInfo!) {
        const u = theirs.get(t.name);
        assert.ok(u, `shared GGUF has no ${t.name}`);
        assert.deepEqual(t.dimensions.map(Number), u.dimensions.map(Number), t.name);
        const n = t.dimensions.map(Number).reduce((x, y) => x * y, 1) * 4;
        const ba = Buffer.alloc(n);
        const bb = Buffer.alloc(n);
        await fa.read(ba, 0, n, Number(t.fileOffset));
        await fb.read(bb, 0, n, Number(u.fileOffset));
        assert.ok(ba.equals(bb), `tensor ${t.name} differs from the llama2.c conversion`);
      }
    } finally {
      await fa.close();
      await fb.close();
    }
  });
});
