// The GGUF LoRA export against llama.cpp: stories260K converted to GGUF by gguf-llama.ts, a random adapter large
// enough to change the predictions written by the PEFT writer into a hand-made run folder, exported by export-run.ts,
// then loaded by llama.cpp (node-llama-cpp) beside the base. Its next-token probabilities must match onnxruntime
// running our graph with the same adapter applied, and must not match the base model's (so the check can fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Token } from 'node-llama-cpp';
import { exportRun } from '../../electron/core/export/export-run.js';
import { folderSpmVocab, writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { openModelFolder, type ModelFolder } from '../../electron/core/model/model-folder.js';
import { repoRoot } from '../support/local-agent.js';
import { needLlamaCpp } from '../support/llama-cpp.js';
import { makeRunFolder, onnxLogits } from '../support/export-run.js';

const ROOT = repoRoot();
const MODEL_DIR = join(ROOT, 'models', 'stories260K');
const GOLDEN = join(ROOT, 'test/fixtures/golden/stories260K-greedy-200.json');
const llamaCpp = await needLlamaCpp();
const skip = typeof llamaCpp === 'string' ? llamaCpp : false;

function softmaxRows(logits: Float32Array, vocab: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let p = 0; p < logits.length / vocab; p++) {
    const row = logits.subarray(p * vocab, (p + 1) * vocab);
    const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
    const e = Float64Array.from(row, (v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    rows.push(e.map((v) => v / sum));
  }
  return rows;
}

const argmax = (row: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
};

/** llama.cpp's full-vocabulary next-token probabilities after each prompt token, base + LoRA file. */
async function llamaCppProbs(baseGguf: string, loraGguf: string, prompt: number[], vocab: number): Promise<Float64Array[]> {
  if (typeof llamaCpp === 'string') throw new Error(llamaCpp);
  const model = await llamaCpp.llama.loadModel({ modelPath: baseGguf, gpuLayers: 0 });
  try {
    // F32 KV cache and no flash attention: llama.cpp's F16 defaults alone move these probabilities by ~1e-2
    // (see gguf-write.test.ts).
    const context = await model.createContext({
      contextSize: 512, batchSize: 512, threads: 1, sequences: 1,
      flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
      lora: { adapters: [{ filePath: loraGguf, scale: 1 }] },
    });
    try {
      // temperature 1 with top-k = vocab, top-p 1, min-p 0: the plain softmax over every token.
      const options = { temperature: 1, topK: vocab, topP: 1, minP: 0, seed: 1 };
      const outs = await context.getSequence().controlledEvaluate(prompt.map((t) => [t as Token, { generateNext: { probabilities: true, options } }] as const));
      return prompt.map((_, pos) => {
        const probs = outs[pos]?.next.probabilities;
        assert.ok(probs && probs.size === vocab, `llama.cpp gave every token a probability at position ${pos}`);
        const row = new Float64Array(vocab);
        for (const [token, p] of probs) row[token] = p;
        return row;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function compare(a: Float64Array[], b: Float64Array[]): { maxDiff: number; top1Agree: number } {
  let maxDiff = 0;
  let top1Agree = 0;
  a.forEach((row, pos) => {
    for (let i = 0; i < row.length; i++) maxDiff = Math.max(maxDiff, Math.abs(row[i]! - b[pos]![i]!));
    if (argmax(row) === argmax(b[pos]!)) top1Agree++;
  });
  return { maxDiff, top1Agree };
}

async function check(folder: ModelFolder, dir: string, baseGguf: string, prompt: number[], o: { useRslora: boolean; dtype: 'f32' | 'f16'; amp: number; tolerance: number }) {
  const c = folder.config;
  const run = await makeRunFolder(join(dir, `run-${o.dtype}`), MODEL_DIR, { rank: 4, alpha: 8, amp: o.amp, seed: 7, useRslora: o.useRslora });
  const out = join(dir, `adapter-${o.dtype}.gguf`);
  const r = await exportRun({ runDir: run.runDir, format: 'gguf', out, ggufDtype: o.dtype });
  assert.equal(r.files.length, 1);

  // What llama.cpp's own GGUF parser sees: the adapter keys, and lora_a ne [in, r], lora_b ne [r, out].
  if (typeof llamaCpp === 'string') return;
  const info = await llamaCpp.lib.readGgufFileInfo(out, { readTensorInfo: true });
  const md = info.metadata as unknown as Record<string, Record<string, unknown>>;
  assert.equal(md.general!.architecture, 'llama');
  assert.equal(md.general!.type, 'adapter');
  assert.equal(md.adapter!.type, 'lora');
  const scale = o.useRslora ? 8 / Math.sqrt(4) : 8 / 4;
  assert.ok(Math.abs((md.adapter!.lora as { alpha: number }).alpha - scale * 4) < 1e-5, 'alpha / r is the PEFT scale');
  const dims = new Map(info.fullTensorInfo!.map((t) => [t.name, t.dimensions.map(Number)]));
  assert.equal(dims.size, c.numLayers * 7 * 2);
  assert.deepEqual(dims.get('blk.0.attn_q.weight.lora_a'), [c.hiddenSize, 4]);
  assert.deepEqual(dims.get('blk.0.attn_k.weight.lora_b'), [4, c.numKvHeads * c.headDim]);
  assert.deepEqual(dims.get('blk.4.ffn_down.weight.lora_a'), [c.intermediateSize, 4]);
  assert.deepEqual(dims.get('blk.4.ffn_down.weight.lora_b'), [4, c.hiddenSize]);
  assert.ok(info.fullTensorInfo!.every((t) => t.ggmlType === (o.dtype === 'f16' ? 1 : 0)));

  const cpp = await llamaCppProbs(baseGguf, out, prompt, c.vocabSize);
  const withLora = softmaxRows(await onnxLogits(folder, prompt, { tensors: run.lora, scale }), c.vocabSize);
  const base = softmaxRows(await onnxLogits(folder, prompt), c.vocabSize);
  const same = compare(cpp, withLora);
  const vsBase = compare(cpp, base);
  console.log(`GGUF LoRA ${o.dtype}${o.useRslora ? ' rsLoRA' : ''}: llama.cpp vs onnxruntime+LoRA max |dp| = ${same.maxDiff.toExponential(2)}, ` +
    `top-1 agree ${same.top1Agree}/${prompt.length}; vs the base model max |dp| = ${vsBase.maxDiff.toFixed(3)}, top-1 agree ${vsBase.top1Agree}/${prompt.length}`);
  assert.ok(same.maxDiff < o.tolerance, `llama.cpp + GGUF LoRA vs onnxruntime + LoRA: max |dp| = ${same.maxDiff}`);
  assert.equal(same.top1Agree, prompt.length, 'top-1 agrees at every position');
  // The adapter matters: without it the predictions are far away, so a LoRA llama.cpp ignored would fail above.
  assert.ok(vsBase.maxDiff > 0.2, `the adapter changes probabilities (max |dp| vs base ${vsBase.maxDiff})`);
  assert.ok(vsBase.top1Agree < prompt.length * 0.8, `the adapter changes top-1 tokens (${vsBase.top1Agree}/${prompt.length} unchanged)`);
}

test('GGUF LoRA export: llama.cpp with base + adapter predicts what onnxruntime predicts with the LoRA', { skip, timeout: 300_000 }, async () => {
  const folder = await openModelFolder(MODEL_DIR);
  const golden = JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] };
  const prompt = golden.ids.slice(0, 48);
  const dir = await mkdtemp(join(tmpdir(), 'cfd-export-gguf-'));
  try {
    const baseGguf = join(dir, 'base-f32.gguf');
    await writeLlamaGguf(folder, baseGguf, { dtype: 'f32', vocab: await folderSpmVocab(folder) });
    await check(folder, dir, baseGguf, prompt, { useRslora: false, dtype: 'f32', amp: 0.15, tolerance: 2e-5 });
    // F16 LoRA tensors: ggml also rounds the activations to F16 for an F16 matmul, so the probabilities agree less
    // closely. rsLoRA (alpha / sqrt(r) = 4 here) checks the alpha written for it; a smaller amplitude keeps the
    // adapter's effect near the F32 case's.
    await check(folder, dir, baseGguf, prompt, { useRslora: true, dtype: 'f16', amp: 0.1, tolerance: 5e-3 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
