// The merged export: the folder it writes opens as a model, and onnxruntime's logits of the merged weights equal
// onnxruntime's logits of the base with the LoRA applied in the graph (an independent path: x W^T + s (x A^T) B^T,
// never W + s B A). Config and tokenizer files are copied unchanged; an F16 base stays F16 with each merged value
// the f16 rounding of an f64 reference; BF16 rounding; rsLoRA scale; the base model read from --model when moved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportRun } from '../../electron/core/export/export-run.js';
import { MODEL_SIDE_FILES } from '../../electron/core/export/merged.js';
import { openModelFolder, readModelTensorBytes, readModelTensorF32, tensorLocation } from '../../electron/core/model/model-folder.js';
import { encodeFloats, writeSafetensorsStream } from '../../electron/core/model/safetensors-write.js';
import { folderSpmVocab, writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { readGgufHeader, readGgufRows } from '../../electron/core/model/gguf-read.js';
import { f16BitsToF32, f32ToF16Bits } from '../../electron/core/util/f16.js';
import { repoRoot } from '../support/local-agent.js';
import { f16CopyOfModel, makeRunFolder, onnxLogits } from '../support/export-run.js';
import { relMaxDiff } from '../support/compare.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');
const PROMPT = [1, 403, 407, 261, 378, 288, 395, 2, 1, 54, 350, 412];

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-merged-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const useRslora of [false, true]) {
  test(`merged F32 export${useRslora ? ' (rsLoRA)' : ''}: ONNX logits equal base + LoRA, files copied, config identical`, async () => {
    await withTempDir(async (dir) => {
      const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { rank: 4, alpha: 8, amp: 0.15, seed: 3, useRslora });
      const out = join(dir, 'merged');
      const r = await exportRun({ runDir: run.runDir, format: 'merged', out });
      assert.deepEqual(r.files.map((f) => f.name).sort(), ['model.safetensors', ...MODEL_SIDE_FILES.filter((f) => f !== 'chat_template.jinja')].sort());
      assert.deepEqual((await readdir(out)).sort(), r.files.map((f) => f.name).sort());
      assert.deepEqual(await readdir(dir), ['merged', 'run'], 'no temporary folders left');
      for (const f of r.files.filter((x) => x.name !== 'model.safetensors')) {
        assert.ok((await readFile(join(out, f.name))).equals(await readFile(join(MODEL_DIR, f.name))), `${f.name} copied unchanged`);
      }

      const base = await openModelFolder(MODEL_DIR);
      const merged = await openModelFolder(out);
      assert.deepEqual(merged.config, base.config);
      assert.deepEqual([...merged.tensors.keys()], [...base.tensors.keys()]);
      assert.ok([...merged.tensors.values()].every((t) => t.info.dtype === 'F32'));
      assert.deepEqual(tensorLocation(merged, 'model.embed_tokens.weight').header.metadata, tensorLocation(base, 'model.embed_tokens.weight').header.metadata);

      const scale = useRslora ? 8 / Math.sqrt(4) : 8 / 4;
      const reference = await onnxLogits(base, PROMPT, { tensors: run.lora, scale });
      const mergedLogits = await onnxLogits(merged, PROMPT);
      const baseLogits = await onnxLogits(base, PROMPT);
      const d = relMaxDiff(mergedLogits, reference);
      console.log(`merged${useRslora ? ' rsLoRA' : ''}: max |merged - (base + LoRA)| / max |logit| = ${d.toExponential(2)}; vs base alone ${relMaxDiff(baseLogits, reference).toFixed(3)}`);
      assert.ok(d < 1e-5, `merged vs base + LoRA relative difference ${d}`);
      assert.ok(relMaxDiff(baseLogits, reference) > 0.05, 'the adapter changes the logits, so the check can fail');
    });
  });
}

test('merged export of an F16 base stays F16, each merged weight the f16 rounding of W + s B A', async () => {
  await withTempDir(async (dir) => {
    const f16Dir = join(dir, 'base-f16');
    await f16CopyOfModel(await openModelFolder(MODEL_DIR), f16Dir);
    const run = await makeRunFolder(join(dir, 'run'), f16Dir, { rank: 4, alpha: 8, amp: 0.15, seed: 5 });
    const out = join(dir, 'merged');
    await exportRun({ runDir: run.runDir, format: 'merged', out });
    const base = await openModelFolder(f16Dir);
    const merged = await openModelFolder(out);
    assert.ok([...merged.tensors.values()].every((t) => t.info.dtype === 'F16'), 'every tensor F16');
    const mergedBytes = (await readFile(join(out, 'model.safetensors'))).length;
    assert.equal(mergedBytes, (await readFile(join(f16Dir, 'model.safetensors'))).length, 'same size as the F16 base');
    // Unadapted tensors are byte copies.
    assert.ok((await readModelTensorBytes(merged, 'model.embed_tokens.weight')).equals(await readModelTensorBytes(base, 'model.embed_tokens.weight')));
    // An adapted one: f64 reference W + (alpha / r) B A, rounded once to f16; our f32 accumulation may land one
    // f16 step away where the exact value sits near a rounding boundary.
    const name = 'model.layers.2.mlp.down_proj.weight';
    const a = run.lora.get('model.layers.2.mlp.down_proj.lora_A')!.data;
    const b = run.lora.get('model.layers.2.mlp.down_proj.lora_B')!.data;
    const [outDim, inDim] = tensorLocation(base, name).info.shape as [number, number];
    const w = await readModelTensorF32(base, name);
    const got = await readModelTensorBytes(merged, name);
    let off = 0;
    for (let o = 0; o < outDim; o++) {
      for (let i = 0; i < inDim; i++) {
        let acc = 0;
        for (let k = 0; k < 4; k++) acc += b[o * 4 + k]! * a[k * inDim + i]!;
        const want = f32ToF16Bits(w[o * inDim + i]! + 2 * acc);
        const have = got.readUInt16LE(2 * (o * inDim + i));
        if (have !== want) {
          off++;
          assert.ok(Math.abs(have - want) === 1, `${name}[${o}, ${i}]: ${f16BitsToF32(have)} vs ${f16BitsToF32(want)}`);
        }
      }
    }
    assert.ok(off < (outDim * inDim) / 100, `${off} of ${outDim * inDim} values one f16 step off`);
    // And the model still computes what base + LoRA computes, to f16 precision.
    const d = relMaxDiff(await onnxLogits(merged, PROMPT), await onnxLogits(base, PROMPT, { tensors: run.lora, scale: 2 }));
    assert.ok(d < 5e-3, `F16 merged vs F16 base + LoRA relative difference ${d}`);
  });
});

test('BF16 encoding rounds to nearest even, like torch', () => {
  const v = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 1 + 2 ** -8 + 2 ** -20, 65504, Infinity, NaN]);
  const bits = new Uint16Array(encodeFloats(v, 'BF16').buffer.slice(0));
  // 1 + 2^-8 is halfway between bf16 1 (0x3f80) and 1 + 2^-7 (0x3f81): ties to the even 0x3f80; 1 + 3*2^-8 ties up.
  assert.deepEqual([...bits].map((x) => x.toString(16)), ['3f80', '3f80', '3f82', 'c020', '3f81', '4780', '7f80', '7fc0']);
});

test('merged export reads the base from --model when run.json points to a moved folder', async () => {
  await withTempDir(async (dir) => {
    const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { seed: 9 });
    await writeFile(join(run.runDir, 'run.json'), JSON.stringify({ model: { dir: join(dir, 'gone', 'stories260K') } }));
    await assert.rejects(exportRun({ runDir: run.runDir, format: 'merged', out: join(dir, 'm') }), /gone\/stories260K \(run\.json model\.dir\) is missing or moved: pass its new path with --model PATH/);
    await assert.rejects(exportRun({ runDir: run.runDir, format: 'gguf', out: join(dir, 'a.gguf') }), /is missing or moved/);
    assert.deepEqual((await readdir(dir)).sort(), ['run']);
    const r = await exportRun({ runDir: run.runDir, format: 'merged', out: join(dir, 'm'), modelDir: MODEL_DIR });
    assert.ok(r.files.some((f) => f.name === 'model.safetensors'));
  });
});

test('merged export of a sharded base keeps the shards and writes their index', async () => {
  await withTempDir(async (dir) => {
    // A two-shard copy of stories260K: the embedding alone in the first shard, everything else in the second.
    const src = await openModelFolder(MODEL_DIR);
    const sharded = join(dir, 'sharded');
    await mkdir(sharded);
    const names = [...src.tensors.keys()];
    const shardOf = (n: string) => (n === 'model.embed_tokens.weight' ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors');
    for (const shard of new Set(names.map(shardOf))) {
      await writeSafetensorsStream(join(sharded, shard), names.filter((n) => shardOf(n) === shard).map((name) => ({
        name, dtype: 'F32' as const, shape: tensorLocation(src, name).info.shape,
        async *bytes() { yield await readModelTensorBytes(src, name); },
      })), { format: 'pt' });
    }
    await writeFile(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(names.map((n) => [n, shardOf(n)])) }));
    for (const f of ['config.json', 'tokenizer.json']) await copyFile(join(MODEL_DIR, f), join(sharded, f));

    const run = await makeRunFolder(join(dir, 'run'), sharded, { rank: 4, alpha: 8, amp: 0.15, seed: 8 });
    const out = join(dir, 'merged');
    const r = await exportRun({ runDir: run.runDir, format: 'merged', out });
    assert.deepEqual(r.files.map((f) => f.name).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json']);
    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    assert.deepEqual(index.weight_map, Object.fromEntries(names.map((n) => [n, shardOf(n)])));
    const merged = await openModelFolder(out);
    assert.equal(merged.files.length, 2);
    assert.equal(index.metadata.total_size, [...merged.tensors.values()].reduce((a, t) => a + t.info.nbytes, 0), 'total_size counts tensor bytes');
    const d = relMaxDiff(await onnxLogits(merged, PROMPT), await onnxLogits(src, PROMPT, { tensors: run.lora, scale: 2 }));
    assert.ok(d < 1e-5, `sharded merged vs base + LoRA relative difference ${d}`);
  });
});

test('a run trained on a GGUF base exports the same GGUF LoRA as from its HF folder; merged asks for the folder', async () => {
  await withTempDir(async (dir) => {
    const hf = await openModelFolder(MODEL_DIR);
    const ggufBase = join(dir, 'stories260K-f32.gguf');
    await writeLlamaGguf(hf, ggufBase, { dtype: 'f32', vocab: await folderSpmVocab(hf) });
    const run = await makeRunFolder(join(dir, 'run'), MODEL_DIR, { seed: 21 });
    const fromHf = join(dir, 'from-hf.gguf');
    await exportRun({ runDir: run.runDir, format: 'gguf', out: fromHf });
    // The run now names the GGUF file as its base, as `confidant train --model x.gguf` records it.
    await writeFile(join(run.runDir, 'run.json'), JSON.stringify({ model: { dir: ggufBase } }));
    const fromGguf = join(dir, 'from-gguf.gguf');
    await exportRun({ runDir: run.runDir, format: 'gguf', out: fromGguf });
    const [a, b] = [await readGgufHeader(fromHf), await readGgufHeader(fromGguf)];
    assert.deepEqual([...b.tensors.keys()], [...a.tensors.keys()]);
    for (const t of a.tensors.values()) {
      const rows = Array.from({ length: t.ne[1] ?? 1 }, (_, i) => i);
      assert.deepEqual(await readGgufRows(b, t.name, rows), await readGgufRows(a, t.name, rows), t.name);
    }
    await assert.rejects(exportRun({ runDir: run.runDir, format: 'merged', out: join(dir, 'm') }), /is a GGUF file: a merged export needs the base model's Hugging Face folder/);
  });
});
