// Tests the safetensors reader on the bundled stories260K model and on corrupt files, and the writer, whose bytes
// are checked by an independent python3 parser (json + struct). Does not test model-folder logic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorF32, writeSafetensors } from '../../electron/core/model/safetensors.js';
import { f16BitsToF32 } from '../../electron/core/util/f16.js';
import { needTool } from '../support/tools.js';
import { findRepoRoot as repoRoot } from '../../electron/core/paths.js';

const MODEL = join(repoRoot(), 'models', 'stories260K', 'model.safetensors');

/** A safetensors file assembled by hand from a header object and a data length (data bytes are zeros). */
function handMade(header: Record<string, unknown>, dataBytes: number, headerLenOverride?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

test('bundled stories260K: 47 F32 tensors with the shapes its README lists', async () => {
  const h = await readSafetensorsHeader(MODEL);
  assert.equal(h.tensors.size, 47);
  assert.equal(h.headerBytes, 4856);
  assert.deepEqual(h.metadata, { format: 'pt' });
  const shape = (n: string): number[] => h.tensors.get(n)!.shape;
  assert.deepEqual(shape('model.embed_tokens.weight'), [512, 64]);
  assert.deepEqual(shape('model.norm.weight'), [64]);
  assert.equal(h.tensors.has('lm_head.weight'), false);
  for (let i = 0; i < 5; i++) {
    const p = `model.layers.${i}`;
    assert.deepEqual(shape(`${p}.input_layernorm.weight`), [64]);
    assert.deepEqual(shape(`${p}.self_attn.q_proj.weight`), [64, 64]);
    assert.deepEqual(shape(`${p}.self_attn.k_proj.weight`), [32, 64]);
    assert.deepEqual(shape(`${p}.self_attn.v_proj.weight`), [32, 64]);
    assert.deepEqual(shape(`${p}.self_attn.o_proj.weight`), [64, 64]);
    assert.deepEqual(shape(`${p}.post_attention_layernorm.weight`), [64]);
    assert.deepEqual(shape(`${p}.mlp.gate_proj.weight`), [172, 64]);
    assert.deepEqual(shape(`${p}.mlp.up_proj.weight`), [172, 64]);
    assert.deepEqual(shape(`${p}.mlp.down_proj.weight`), [64, 172]);
  }
  let params = 0;
  for (const t of h.tensors.values()) {
    assert.equal(t.dtype, 'F32');
    params += t.shape.reduce((a, b) => a * b, 1);
  }
  assert.equal(params, 260_032);
});

test('readTensorF32 matches values decoded by python struct', async (t) => {
  const skip = needTool('python3');
  if (skip) return t.skip(skip);
  {
    const h = await readSafetensorsHeader(MODEL);
    const names = ['model.norm.weight', 'model.layers.3.mlp.down_proj.weight'];
    const py = spawnSync('python3', ['-c', `
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; hdr = json.loads(f.read(n))
out = {}
for name in sys.argv[2:]:
    b, e = hdr[name]['data_offsets']; f.seek(8 + n + b)
    out[name] = list(struct.unpack('<%df' % ((e - b) // 4), f.read(e - b)))
print(json.dumps(out))`, MODEL, ...names], { encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(py.status, 0, py.stderr);
    const expected = JSON.parse(py.stdout) as Record<string, number[]>;
    for (const name of names) {
      const got = await readTensorF32(h, name);
      assert.equal(got.length, expected[name]!.length);
      assert.deepEqual(Array.from(got), expected[name]);
    }
  }
});

test('corrupt files give errors naming the file and the tensor', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-st-'));
  try {
    const whole = await readFile(MODEL);
    const truncated = join(dir, 'truncated.safetensors');
    await writeFile(truncated, whole.subarray(0, 600_000));
    await assert.rejects(readSafetensorsHeader(truncated), (e: Error) => {
      assert.match(e.message, /truncated\.safetensors/);
      assert.match(e.message, /tensor "model\.[^"]+"/);
      assert.match(e.message, /truncated/);
      return true;
    });

    const tooLong = join(dir, 'header-past-end.safetensors');
    await writeFile(tooLong, handMade({}, 0, 1_000_000n));
    await assert.rejects(readSafetensorsHeader(tooLong), /header-past-end\.safetensors: header length 1000000 runs past the end of the file/);

    const tiny = join(dir, 'tiny.safetensors');
    await writeFile(tiny, Buffer.from([1, 2, 3]));
    await assert.rejects(readSafetensorsHeader(tiny), /tiny\.safetensors: not a safetensors file/);

    const overlap = join(dir, 'overlap.safetensors');
    await writeFile(overlap, handMade({
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
    }, 24));
    await assert.rejects(readSafetensorsHeader(overlap), /overlap\.safetensors: tensor "b" \(bytes 8\.\.24\) overlaps tensor "a"/);

    const hole = join(dir, 'hole.safetensors');
    await writeFile(hole, handMade({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [16, 24] },
    }, 24));
    await assert.rejects(readSafetensorsHeader(hole), /hole\.safetensors: hole of 8 bytes before tensor "b"/);

    const size = join(dir, 'size.safetensors');
    await writeFile(size, handMade({ w: { dtype: 'F16', shape: [3, 2], data_offsets: [0, 24] } }, 24));
    await assert.rejects(readSafetensorsHeader(size), /size\.safetensors: tensor "w": F16 \[3,2\] needs 12 bytes but data_offsets \[0, 24\] span 24/);

    const dtype = join(dir, 'dtype.safetensors');
    await writeFile(dtype, handMade({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 1] } }, 1));
    await assert.rejects(readSafetensorsHeader(dtype), /dtype\.safetensors: tensor "w": unknown dtype "Q4"/);

    const trailing = join(dir, 'trailing.safetensors');
    await writeFile(trailing, handMade({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 12));
    await assert.rejects(readSafetensorsHeader(trailing), /trailing\.safetensors: .*8 trailing bytes/);

    const json = join(dir, 'json.safetensors');
    const bad = Buffer.concat([Buffer.alloc(8), Buffer.from('{"a": ')]);
    bad.writeBigUInt64LE(6n);
    await writeFile(json, bad);
    await assert.rejects(readSafetensorsHeader(json), /json\.safetensors: header is not valid UTF-8 JSON/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('F16 and BF16 tensors are widened to f32 exactly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-st-'));
  try {
    // Bit patterns from IEEE 754: f16 1.0=0x3C00, -2=0xC000, 0.5=0x3800, max 65504=0x7BFF, smallest subnormal
    // 2^-24=0x0001, +inf=0x7C00; bf16 1.0=0x3F80, -3.0=0xC040, 2^-126 (min normal)=0x0080.
    const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00];
    const bf16 = [0x3f80, 0xc040, 0x0080];
    const data = Buffer.alloc((f16.length + bf16.length) * 2);
    [...f16, ...bf16].forEach((v, i) => data.writeUInt16LE(v, i * 2));
    const path = join(dir, 'half.safetensors');
    const header = {
      h: { dtype: 'F16', shape: [f16.length], data_offsets: [0, f16.length * 2] },
      b: { dtype: 'BF16', shape: [bf16.length], data_offsets: [f16.length * 2, data.length] },
    };
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    await writeFile(path, Buffer.concat([len, json, data]));
    const h = await readSafetensorsHeader(path);
    assert.deepEqual(Array.from(await readTensorF32(h, 'h')), [1, -2, 0.5, 65504, 2 ** -24, Infinity]);
    assert.deepEqual(Array.from(await readTensorF32(h, 'b')), [1, -3, 2 ** -126]);
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
    assert.equal(Object.is(f16BitsToF32(0x8000), -0), true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeSafetensors round-trips and python3 reads the same header and values', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-st-'));
  try {
    const path = join(dir, 'out.safetensors');
    const a = Float32Array.from({ length: 6 }, (_, i) => i * 0.25 - 1);
    const b = Float32Array.from([3.5, -0.125, 1e-7]);
    const tensors = new Map([
      ['layer.a', { dims: [2, 3], data: a }],
      ['layer.b', { dims: [3], data: b }],
      ['empty', { dims: [0, 4], data: new Float32Array(0) }],
    ]);
    const { bytes } = await writeSafetensors(path, tensors, { format: 'pt', note: 'test' });
    assert.equal((await readFile(path)).length, bytes);
    assert.deepEqual(await readdir(dir), ['out.safetensors'], 'no temporary file is left behind');

    const h = await readSafetensorsHeader(path);
    assert.deepEqual(h.metadata, { format: 'pt', note: 'test' });
    assert.deepEqual(Array.from(await readTensorF32(h, 'layer.a')), Array.from(a));
    assert.deepEqual(Array.from(await readTensorF32(h, 'layer.b')), Array.from(b));
    assert.equal((await readTensorF32(h, 'empty')).length, 0);

    const skip = needTool('python3');
    if (skip) return t.skip(skip);
    const py = spawnSync('python3', ['-c', `
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n].decode('utf-8'))
data = raw[8 + n:]
out = {'header_len': n, 'data_len': len(data), 'meta': hdr.pop('__metadata__', None), 'tensors': {}}
for name, e in hdr.items():
    b, end = e['data_offsets']
    out['tensors'][name] = {'dtype': e['dtype'], 'shape': e['shape'], 'offsets': [b, end],
                            'values': list(struct.unpack('<%df' % ((end - b) // 4), data[b:end]))}
print(json.dumps(out))`, path], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    const parsed = JSON.parse(py.stdout) as {
      header_len: number; data_len: number; meta: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; offsets: number[]; values: number[] }>;
    };
    assert.equal(parsed.header_len % 8, 0, 'header padded to 8 bytes like the reference writer');
    assert.equal(parsed.data_len, (6 + 3) * 4);
    assert.deepEqual(parsed.meta, { format: 'pt', note: 'test' });
    assert.deepEqual(parsed.tensors['layer.a'], { dtype: 'F32', shape: [2, 3], offsets: [0, 24], values: Array.from(a) });
    assert.deepEqual(parsed.tensors['layer.b'], { dtype: 'F32', shape: [3], offsets: [24, 36], values: Array.from(b) });
    assert.deepEqual(parsed.tensors['empty'], { dtype: 'F32', shape: [0, 4], offsets: [36, 36], values: [] });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeSafetensors refuses mismatched dims and leaves no file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-st-'));
  try {
    const path = join(dir, 'bad.safetensors');
    await assert.rejects(
      writeSafetensors(path, new Map([['x', { dims: [2, 2], data: new Float32Array(3) }]])),
      /bad\.safetensors: tensor "x": dims \[2,2\] hold 4 values but data has 3/,
    );
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
