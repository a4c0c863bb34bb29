// Tests the PEFT adapter export: key names and shapes (read back with a parse written here and with python3),
// adapter_config.json fields, validation errors, and overwrite refusal. Does not load the adapter into PEFT itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportPeft, type LoraTensor } from '../../electron/core/export/peft.js';
import { needTool } from '../support/tools.js';

// stories260K: hidden 64, q 8*8=64, kv 4*8=32, intermediate 172.
const IN_OUT: Record<string, [string, number, number]> = {
  q_proj: ['self_attn', 64, 64],
  k_proj: ['self_attn', 64, 32],
  v_proj: ['self_attn', 64, 32],
  o_proj: ['self_attn', 64, 64],
  gate_proj: ['mlp', 64, 172],
  up_proj: ['mlp', 64, 172],
  down_proj: ['mlp', 172, 64],
};

function makeLora(rank: number, modules: string[], layers = 5): Map<string, LoraTensor> {
  const out = new Map<string, LoraTensor>();
  let v = 0;
  for (let i = 0; i < layers; i++) {
    for (const m of modules) {
      const [block, inF, outF] = IN_OUT[m]!;
      const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => (v++ % 97) / 97 - 0.5);
      // Inserted B before A and in mixed order on purpose: the export must not depend on input order.
      out.set(`model.layers.${i}.${block}.${m}.lora_B`, { dims: [outF, rank], data: fill(outF * rank) });
      out.set(`model.layers.${i}.${block}.${m}.lora_A`, { dims: [rank, inF], data: fill(rank * inF) });
    }
  }
  return out;
}

/** Minimal safetensors parse written here (u64 LE header length, JSON header, F32 data). */
function parseSafetensors(raw: Buffer): { meta: unknown; tensors: Map<string, { shape: number[]; data: Float32Array }> } {
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.toString('utf8', 8, 8 + n)) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let meta: unknown = null;
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') { meta = e; continue; }
    assert.equal(e.dtype, 'F32');
    const bytes = raw.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    const data = new Float32Array(bytes.length / 4);
    for (let i = 0; i < data.length; i++) data[i] = bytes.readFloatLE(i * 4);
    tensors.set(name, { shape: e.shape, data });
  }
  return { meta, tensors };
}

test('PEFT export: key names, [r,in]/[out,r] shapes, values and adapter_config.json', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-peft-'));
  try {
    const modules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const lora = makeLora(4, modules);
    lora.set('model.layers.0.self_attn.q_proj.lora_B.grad', { dims: [64, 4], data: new Float32Array(256) });
    const outDir = join(dir, 'adapter');
    const r = await exportPeft(lora, { baseModel: 'models/stories260K', rank: 4, alpha: 8, targetModules: modules }, outDir);
    assert.equal(r.tensorCount, 70);
    assert.deepEqual((await readdir(outDir)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.deepEqual(await readdir(dir), ['adapter'], 'no temporary folders left');

    const st = parseSafetensors(await readFile(join(outDir, 'adapter_model.safetensors')));
    assert.deepEqual(st.meta, { format: 'pt' });
    assert.equal(st.tensors.size, 70, 'gradients are not exported');
    assert.deepEqual(st.tensors.get('base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight')!.shape, [4, 64]);
    assert.deepEqual(st.tensors.get('base_model.model.model.layers.3.self_attn.k_proj.lora_B.weight')!.shape, [32, 4]);
    assert.deepEqual(st.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!.shape, [4, 172]);
    assert.deepEqual(st.tensors.get('base_model.model.model.layers.4.mlp.gate_proj.lora_B.weight')!.shape, [172, 4]);
    for (const [name, v] of lora) {
      if (name.endsWith('.grad')) continue;
      const got = st.tensors.get(`base_model.model.${name}.weight`);
      assert.ok(got, `${name} exported`);
      assert.deepEqual(got.shape, v.dims);
      assert.deepEqual(got.data, v.data);
    }

    const cfg = JSON.parse(await readFile(join(outDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.task_type, 'CAUSAL_LM');
    assert.equal(cfg.base_model_name_or_path, 'models/stories260K');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8);
    assert.deepEqual(cfg.target_modules, modules);
    assert.equal(cfg.bias, 'none');
    assert.equal(cfg.fan_in_fan_out, false);
    assert.equal(cfg.use_rslora, false);
    assert.equal(cfg.use_dora, false);
    assert.equal(cfg.modules_to_save, null);

    const skip = needTool('python3');
    if (skip) return t.skip(skip);
    const py = spawnSync('python3', ['-c', `
import json, struct, sys
raw = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]; h = json.loads(raw[8:8 + n])
h.pop('__metadata__')
print(json.dumps(sorted([k, v['shape']] for k, v in h.items())))`, join(outDir, 'adapter_model.safetensors')], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    const keys = JSON.parse(py.stdout) as [string, number[]][];
    assert.equal(keys.length, 70);
    assert.ok(keys.every(([k]) => /^base_model\.model\.model\.layers\.\d\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.lora_[AB]\.weight$/.test(k)));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('PEFT export refuses to overwrite a non-empty folder unless asked', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-peft-'));
  try {
    const opts = { baseModel: 'm', rank: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] };
    const outDir = join(dir, 'out');
    await mkdir(outDir);
    await writeFile(join(outDir, 'keep.txt'), 'user file');
    await assert.rejects(exportPeft(makeLora(2, ['q_proj', 'v_proj'], 1), opts, outDir), /out already exists and is not empty \(keep\.txt\): choose another path or allow overwriting/);
    assert.equal(await readFile(join(outDir, 'keep.txt'), 'utf8'), 'user file');

    await exportPeft(makeLora(2, ['q_proj', 'v_proj'], 1), { ...opts, overwrite: true }, outDir);
    assert.deepEqual((await readdir(outDir)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.deepEqual(await readdir(dir), ['out'], 'no temporary or old folders left');

    // An existing empty folder is fine without overwrite.
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await exportPeft(makeLora(2, ['q_proj', 'v_proj'], 1), opts, empty);
    assert.equal((await readdir(empty)).length, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('PEFT export names the tensor when names, ranks or pairs are wrong', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-peft-'));
  try {
    const opts = { baseModel: 'm', rank: 2, alpha: 4, targetModules: ['q_proj'] };
    const out = join(dir, 'o');
    const good = makeLora(2, ['q_proj'], 1);
    await assert.rejects(exportPeft(good, { ...opts, rank: 3 }, out), /tensor "model\.layers\.0\.self_attn\.q_proj\.lora_B" is \[64, 2\]; lora_B must be \[out, r=3\]/);
    await assert.rejects(exportPeft(good, { ...opts, targetModules: ['v_proj'] }, out), /is for q_proj, which is not in targetModules \[v_proj\]/);
    const unpaired = new Map(good);
    unpaired.delete('model.layers.0.self_attn.q_proj.lora_B');
    await assert.rejects(exportPeft(unpaired, opts, out), /"model\.layers\.0\.self_attn\.q_proj\.lora_A" has no partner "model\.layers\.0\.self_attn\.q_proj\.lora_B"/);
    const badName = new Map(good);
    badName.set('layers.0.q.lora_A', { dims: [2, 2], data: new Float32Array(4) });
    await assert.rejects(exportPeft(badName, opts, out), /"layers\.0\.q\.lora_A" is not a LoRA tensor name/);
    const nan = makeLora(2, ['q_proj'], 1);
    nan.get('model.layers.0.self_attn.q_proj.lora_A')!.data[5] = NaN;
    await assert.rejects(exportPeft(nan, opts, out), /non-finite value at index 5/);
    assert.deepEqual(await readdir(dir), [], 'nothing written on error');

    // The protocol's tensor-list form (GET_LORA reply) is accepted too.
    const list = [...good].map(([name, v]) => ({ name, tensor: { dtype: 'f32', dims: v.dims, data: v.data } }));
    const r = await exportPeft(list, opts, out);
    assert.equal(r.tensorCount, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
