// GGUF models in: stories260K as GGUF (the F32 file in ../shared, converted independently from llama2.c's weights,
// or one written by gguf-llama.ts when ../shared is absent) opens as the same model as the HF folder (config,
// every tensor in HF layout, logits through onnxruntime), its metadata tokenizer encodes like the HF tokenizer.json;
// Q8_0 / Q4_0 tensors dequantise as a naive reading of llama.cpp's blocks says; corrupt files and unknown
// architectures get clear errors; ollama's tiny random Llama 2 GGUF (F16, 32k vocab) opens and tokenizes like the
// Llama 2 tokenizer.json.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel, readModelTensorF32, type ModelFolder } from '../../electron/core/model/model-folder.js';
import { readGgufHeader, readGgufRows } from '../../electron/core/model/gguf-read.js';
import { folderSpmVocab, writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { loadModelTokenizer, loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { buildModelGraph, MODEL_INPUT, MODEL_OUTPUT, readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { OrtRunner } from '../../electron/core/onnx/ort-runner.js';
import { f16BitsToF32 } from '../../electron/core/util/f16.js';
import { quantQ4_0, quantQ8_0, writeFixtureGguf, type FixtureTensor } from '../fixtures/families/gguf-fixture.js';
import { repoRoot } from '../support/local-agent.js';

const HF_DIR = join(repoRoot(), 'models/stories260K');
const SHARED = join(repoRoot(), '../shared/models');
const SHARED_GGUF = join(SHARED, 'stories260K-gguf/stories260K-f32.gguf');
const TINY_RANDOM = join(SHARED, 'tiny-random-llama2-gguf/llama-2-tiny-random.gguf');
const SENTENCES = ['Once upon a time, there was a little girl named Lily.', 'She liked to play outside!', '  two  spaces, digits 123 and é'];
let dir = '';
let gguf = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'confidant-gguf-'));
  gguf = existsSync(SHARED_GGUF) ? SHARED_GGUF : join(dir, 'stories260K-f32.gguf');
  if (gguf !== SHARED_GGUF) {
    const hf = await openModel(HF_DIR);
    await writeLlamaGguf(hf, gguf, { dtype: 'f32', vocab: await folderSpmVocab(hf) });
  }
});
after(async () => rm(dir, { recursive: true, force: true }));

async function logits(folder: ModelFolder, ids: number[]): Promise<Float32Array> {
  const ort = await OrtRunner.create(buildModelGraph(folder.config, await readLlamaWeights(folder, { whole: true })), { intraOpNumThreads: 1 });
  try {
    const { outputs } = await ort.run({ [MODEL_INPUT]: { type: 'int64', dims: [1, ids.length], data: BigInt64Array.from(ids.map(BigInt)) } });
    return outputs[MODEL_OUTPUT]!.data as Float32Array;
  } finally {
    await ort.close();
  }
}

test('stories260K GGUF is the HF model: config, every tensor, logits', async () => {
  const hf = await openModel(HF_DIR);
  const g = await openModel(gguf);
  assert.equal(g.source, 'gguf');
  for (const k of ['modelType', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'vocabSize', 'ropeTheta', 'ropeScaling', 'bosTokenId'] as const) {
    assert.deepEqual(g.config[k], hf.config[k], k);
  }
  assert.ok(Math.abs(g.config.rmsNormEps - hf.config.rmsNormEps) < 1e-9);
  for (const name of hf.tensors.keys()) {
    assert.deepEqual(await readModelTensorF32(g, name), await readModelTensorF32(hf, name), name);
  }
  const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376];
  const a = await logits(g, ids);
  const b = await logits(hf, ids);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  assert.ok(d < 1e-4, `max |GGUF - HF| logits = ${d}`);
});

test('the tokenizer built from stories260K GGUF metadata encodes like the HF tokenizer.json', async () => {
  const fromGguf = await loadModelTokenizer(await openModel(gguf));
  const hf = await loadTokenizer(HF_DIR);
  assert.equal(fromGguf.bosTokenId, hf.bosTokenId);
  assert.equal(fromGguf.eosTokenId, hf.eosTokenId);
  for (const s of SENTENCES) {
    assert.deepEqual(fromGguf.encode(s), hf.encode(s), s);
    assert.equal(fromGguf.decode(fromGguf.encode(s)), hf.decode(hf.encode(s)));
  }
  // A .gguf path works where a folder did.
  assert.deepEqual((await loadTokenizer(gguf)).encode(SENTENCES[0]!), hf.encode(SENTENCES[0]!));
});

/** Naive reading of the blocks: Q8_0 {f16 d, i8 q[32]} -> d*q; Q4_0 {f16 d, u8 q[16]} -> (nibble - 8) * d. */
function naiveDequant(type: 'Q8_0' | 'Q4_0', bytes: Buffer): Float32Array {
  const bs = type === 'Q8_0' ? 34 : 18;
  const out = new Float32Array((bytes.length / bs) * 32);
  for (let b = 0; b < bytes.length / bs; b++) {
    const d = f16BitsToF32(bytes.readUInt16LE(b * bs));
    for (let j = 0; j < 32; j++) {
      out[b * 32 + j] = type === 'Q8_0' ? bytes.readInt8(b * bs + 2 + j) * d : (((j < 16 ? bytes[b * bs + 2 + j]! & 15 : bytes[b * bs + 2 + j - 16]! >> 4)) - 8) * d;
    }
  }
  return out;
}

for (const type of ['Q8_0', 'Q4_0'] as const) {
  test(`${type} tensors dequantise as the block layout says, and the model still opens and runs`, async () => {
    const src = await readGgufHeader(gguf);
    const tensors: FixtureTensor[] = [];
    const raw = new Map<string, Buffer>();
    for (const t of src.tensors.values()) {
      const rows = t.ne.slice(1).reduce((a, b) => a * b, 1);
      const values = await readGgufRows(src, t.name, Array.from({ length: rows }, (_, i) => i));
      const quant = t.ne.length === 2 && t.ne[0]! % 32 === 0;
      const data = quant ? (type === 'Q8_0' ? quantQ8_0(values) : quantQ4_0(values)) : Buffer.from(values.buffer);
      if (quant) raw.set(t.name, data);
      tensors.push({ name: t.name, ne: t.ne, type: quant ? type : 'F32', data });
    }
    const path = join(dir, `stories260K-${type}.gguf`);
    await writeFixtureGguf(path, src.metadata, tensors, 2); // version 2 on purpose
    const file = await readGgufHeader(path);
    assert.equal(file.version, 2);
    for (const [name, bytes] of raw) {
      const t = file.tensors.get(name)!;
      assert.equal(t.type, type);
      const rows = t.ne[1]!;
      assert.deepEqual(await readGgufRows(file, name, Array.from({ length: rows }, (_, i) => i)), naiveDequant(type, bytes), name);
    }
    // Through the model: close to the F32 weights (the quantisation error of the format), and logits stay finite.
    const q = await openModel(path);
    const f = await openModel(gguf);
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const [a, b] = [await readModelTensorF32(q, name), await readModelTensorF32(f, name)];
    let err = 0;
    let ref = 0;
    for (let i = 0; i < a.length; i++) { err += (a[i]! - b[i]!) ** 2; ref += b[i]! ** 2; }
    assert.ok(Math.sqrt(err / ref) < (type === 'Q8_0' ? 0.01 : 0.15), `${type} weight rel. RMS error ${Math.sqrt(err / ref)}`);
    assert.ok((await logits(q, [1, 403, 407])).every(Number.isFinite));
  });
}

test('truncated and corrupt GGUF files and unknown architectures get clear errors', async () => {
  const bytes = await readFile(gguf);
  const truncated = join(dir, 'truncated.gguf');
  await writeFile(truncated, bytes.subarray(0, bytes.length - 1000));
  await assert.rejects(openModel(truncated), /truncated\.gguf: tensor "[^"]+": data ends at byte \d+ but the file has \d+ bytes: the file is truncated/);
  const headerCut = join(dir, 'header-cut.gguf');
  await writeFile(headerCut, bytes.subarray(0, 200));
  await assert.rejects(openModel(headerCut), /header-cut\.gguf: truncated GGUF: the file ends inside the header/);
  const badMagic = join(dir, 'bad-magic.gguf');
  await writeFile(badMagic, Buffer.concat([Buffer.from('GGUX'), bytes.subarray(4)]));
  await assert.rejects(openModel(badMagic), /bad-magic\.gguf: not a GGUF file/);
  const v1 = join(dir, 'v1.gguf');
  const v1bytes = Buffer.from(bytes);
  v1bytes.writeUInt32LE(1, 4);
  await writeFile(v1, v1bytes);
  await assert.rejects(openModel(v1), /GGUF version 1 is not supported \(this reader reads versions 2 and 3\)/);
  const src = await readGgufHeader(gguf);
  const gpt2 = join(dir, 'gpt2.gguf');
  await writeFixtureGguf(gpt2, new Map([...src.metadata, ['general.architecture', 'gpt2']]), []);
  await assert.rejects(openModel(gpt2), /GGUF architecture "gpt2" is not supported; supported: llama .*qwen2/);
});

test('ollama tiny random Llama 2 GGUF (F16, 32k vocab) opens, runs, and tokenizes like the Llama 2 tokenizer.json', { skip: !existsSync(TINY_RANDOM) && 'needs ../shared/models' }, async () => {
  const m = await openModel(TINY_RANDOM);
  assert.equal(m.config.vocabSize, 32000);
  assert.equal(m.config.hiddenSize, 8);
  assert.equal(m.tensors.get('model.layers.0.self_attn.q_proj.weight')!.info.dtype, 'F16');
  assert.ok((await logits(m, [1, 15043, 3186])).every(Number.isFinite));
  const fromGguf = await loadModelTokenizer(m);
  const llama2 = await loadTokenizer(join(SHARED, 'llama2-tokenizer-32k'));
  for (const s of SENTENCES) assert.deepEqual(fromGguf.encode(s), llama2.encode(s), s);
});
