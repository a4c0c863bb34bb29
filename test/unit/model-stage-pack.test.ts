// Tests stage-pack against docs/stage-format.md with a small stage-file reader written here (not the packer's code)
// and a separate safetensors parse of the bundled model. Does not test the agent's C++ parser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { findRepoRoot as repoRoot } from '../../electron/core/paths.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');

interface StageTensor { name: string; dtype: number; dims: number[]; offset: number; nbytes: number; crc: number }
interface Stage {
  magic: string; version: number; hidden: number; intermediate: number; numLayers: number; heads: number; kvHeads: number;
  headDim: number; vocab: number; eps: number; theta: number; layerStart: number; layerEnd: number; flags: number;
  dataOffset: number; fileBytes: number; reserved: Buffer; tensors: StageTensor[]; bytes: Buffer;
}

/** Independent reader of docs/stage-format.md v1 (byte offsets typed in from the table). */
function parseStage(bytes: Buffer): Stage {
  const u64 = (o: number): number => Number(bytes.readBigUInt64LE(o));
  const count = bytes.readUInt32LE(12);
  const tensors: StageTensor[] = [];
  let p = 96;
  for (let i = 0; i < count; i++) {
    const len = bytes.readUInt16LE(p); p += 2;
    const name = bytes.toString('utf8', p, p + len); p += len;
    const dtype = bytes.readUInt8(p); p += 1;
    const ndim = bytes.readUInt8(p); p += 1;
    const dims: number[] = [];
    for (let d = 0; d < ndim; d++) { dims.push(u64(p)); p += 8; }
    const offset = u64(p); p += 8;
    const nbytes = u64(p); p += 8;
    const crc = bytes.readUInt32LE(p); p += 4;
    tensors.push({ name, dtype, dims, offset, nbytes, crc });
  }
  return {
    magic: bytes.toString('latin1', 0, 8), version: bytes.readUInt32LE(8), hidden: bytes.readUInt32LE(16),
    intermediate: bytes.readUInt32LE(20), numLayers: bytes.readUInt32LE(24), heads: bytes.readUInt32LE(28),
    kvHeads: bytes.readUInt32LE(32), headDim: bytes.readUInt32LE(36), vocab: bytes.readUInt32LE(40),
    eps: bytes.readFloatLE(44), theta: bytes.readFloatLE(48), layerStart: bytes.readUInt32LE(52),
    layerEnd: bytes.readUInt32LE(56), flags: bytes.readUInt32LE(60), dataOffset: u64(64), fileBytes: u64(72),
    reserved: bytes.subarray(80, 96), tensors, bytes,
  };
}

/** The stage's structural invariants from the spec: alignment, bounds, no overlap, zero padding, CRCs. */
function checkStage(s: Stage): void {
  assert.equal(s.magic, 'CFDSTAGE');
  assert.equal(s.version, 1);
  assert.ok(s.reserved.every((b) => b === 0), 'reserved bytes are zero');
  assert.equal(s.fileBytes, s.bytes.length, 'file_bytes is the file size');
  assert.equal(s.dataOffset % 64, 0);
  let cursor = s.dataOffset;
  for (const t of s.tensors) {
    assert.equal(t.dtype, 0, `${t.name} is f32`);
    assert.ok(t.dims.length >= 1 && t.dims.length <= 4);
    assert.equal(t.offset % 64, 0, `${t.name} offset aligned`);
    assert.ok(t.offset >= cursor, `${t.name} does not overlap the previous tensor`);
    assert.ok(s.bytes.subarray(cursor, t.offset).every((b) => b === 0), `padding before ${t.name} is zero`);
    assert.equal(t.nbytes, t.dims.reduce((a, b) => a * b, 1) * 4);
    assert.ok(t.offset + t.nbytes <= s.fileBytes, `${t.name} inside the file`);
    assert.equal(crc32(s.bytes.subarray(t.offset, t.offset + t.nbytes)) >>> 0, t.crc, `${t.name} CRC`);
    cursor = t.offset + t.nbytes;
  }
}

/** The bundled model's tensors as raw bytes, parsed here from the safetensors layout (u64 len, JSON, data). */
async function modelTensors(): Promise<Map<string, { shape: number[]; bytes: Buffer }>> {
  const raw = await readFile(join(MODEL_DIR, 'model.safetensors'));
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.toString('utf8', 8, 8 + n)) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { shape: number[]; bytes: Buffer }>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { shape: e.shape, bytes: raw.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) });
  }
  return out;
}

test('two stages [0,2) + [2,5) follow the spec and together hold exactly the model', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-stage-'));
  try {
    const firstPath = join(dir, 'first.cfst');
    const lastPath = join(dir, 'last.cfst');
    const r1 = await packStage(MODEL_DIR, { layerStart: 0, layerEnd: 2, hasEmbedding: true, hasHead: false }, firstPath);
    const folder = await openModelFolder(MODEL_DIR);
    const r2 = await packStage(folder, { layerStart: 2, layerEnd: 5, hasEmbedding: false, hasHead: true }, lastPath, { chunkBytes: 4096 });
    assert.deepEqual((await readdir(dir)).sort(), ['first.cfst', 'last.cfst'], 'no temporary files left');

    const first = parseStage(await readFile(firstPath));
    const last = parseStage(await readFile(lastPath));
    for (const [s, r] of [[first, r1], [last, r2]] as const) {
      checkStage(s);
      assert.equal(r.bytes, s.bytes.length);
      assert.equal(r.sha256, createHash('sha256').update(s.bytes).digest('hex'));
      assert.equal(r.tensorCount, s.tensors.length);
      // config.json of stories260K (checked by hand against models/stories260K/README.md)
      assert.deepEqual([s.hidden, s.intermediate, s.numLayers, s.heads, s.kvHeads, s.headDim, s.vocab], [64, 172, 5, 8, 4, 8, 512]);
      assert.equal(s.eps, Math.fround(1e-5));
      assert.equal(s.theta, 10000);
    }
    assert.deepEqual([first.layerStart, first.layerEnd, first.flags], [0, 2, 0b0101]); // has_embedding | tied
    assert.deepEqual([last.layerStart, last.layerEnd, last.flags], [2, 5, 0b0110]); // has_head | tied
    assert.equal(first.tensors.length, 1 + 2 * 9);
    assert.equal(last.tensors.length, 3 * 9 + 2);
    assert.equal(first.tensors[0]!.name, 'model.embed_tokens.weight');
    assert.deepEqual(last.tensors.slice(-2).map((t) => t.name), ['model.norm.weight', 'model.embed_tokens.weight']);
    assert.deepEqual(first.tensors.slice(1, 10).map((t) => t.name), [
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight',
      'model.layers.0.self_attn.o_proj.weight',
      'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
    ]);

    // Every model tensor appears in the stages with identical shape and bytes; layer tensors exactly once.
    const model = await modelTensors();
    const seen = new Map<string, number>();
    for (const s of [first, last]) {
      for (const t of s.tensors) {
        const m = model.get(t.name);
        assert.ok(m, `${t.name} exists in the model`);
        assert.deepEqual(t.dims, m.shape, `${t.name} shape`);
        assert.ok(s.bytes.subarray(t.offset, t.offset + t.nbytes).equals(m.bytes), `${t.name} bytes equal the model's`);
        seen.set(t.name, (seen.get(t.name) ?? 0) + 1);
      }
    }
    const layerNames = [...model.keys()].filter((n) => n.startsWith('model.layers.')).sort();
    assert.equal(layerNames.length, 45);
    assert.deepEqual([...seen.keys()].filter((n) => n.startsWith('model.layers.')).sort(), layerNames);
    for (const n of layerNames) assert.equal(seen.get(n), 1, `${n} is in exactly one stage`);
    assert.equal(seen.get('model.embed_tokens.weight'), 2, 'tied embedding: first stage embeds, last stage has its own copy as the head');
    assert.equal(seen.get('model.norm.weight'), 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a single stage holding the whole model stores the tied embedding once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-stage-'));
  try {
    const path = join(dir, 'all.cfst');
    await packStage(MODEL_DIR, { layerStart: 0, layerEnd: 5, hasEmbedding: true, hasHead: true }, path);
    const s = parseStage(await readFile(path));
    checkStage(s);
    assert.equal(s.flags, 0b0111);
    assert.equal(s.tensors.length, 47);
    assert.equal(new Set(s.tensors.map((t) => t.name)).size, 47);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stage ranges that do not fit the model are refused with the reason', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-stage-'));
  try {
    const out = join(dir, 'x.cfst');
    await assert.rejects(packStage(MODEL_DIR, { layerStart: 2, layerEnd: 5, hasEmbedding: true, hasHead: true }, out), /only the first stage \(layerStart 0\) can hold the embedding/);
    await assert.rejects(packStage(MODEL_DIR, { layerStart: 0, layerEnd: 2, hasEmbedding: true, hasHead: true }, out), /only the last stage \(layerEnd 5\) can hold the LM head/);
    await assert.rejects(packStage(MODEL_DIR, { layerStart: 3, layerEnd: 7, hasEmbedding: false, hasHead: false }, out), /stage layers \[3, 7\) must be a non-empty range inside \[0, 5\)/);
    await assert.rejects(packStage(MODEL_DIR, { layerStart: 3, layerEnd: 3, hasEmbedding: false, hasHead: false }, out), /non-empty range/);
    assert.deepEqual(await readdir(dir), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
