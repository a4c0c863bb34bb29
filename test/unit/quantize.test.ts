// Tests the host quantiser (electron/core/model/quantize.ts) and quantised stage packing (stage-pack.ts,
// pack-worker.ts) against the independent Python implementation in android-agent/test/pack_stage.py, run as a
// subprocess: random and edge-case matrices must quantise to identical bytes in every format, and whole stage files
// of the bundled model packed by both must be identical. Also checks dequantisation error bounds and the f16
// fallback of grouped formats. The Python quantiser is itself checked against the C++ reference quantize_matrix by
// android-agent/test/test_stage_formats.cpp, which closes the loop TS == Python == C++.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  QUANT_GROUP, WEIGHT_FORMATS, dequantizeMatrix, matrixBytes, quantErrorBound, quantizeMatrix, type WeightFormat,
} from '../../electron/core/model/quantize.js';
import { packStage, planStageLayout } from '../../electron/core/model/stage-pack.js';
import { packStageInWorker } from '../../electron/core/model/pack-worker.js';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { findRepoRoot } from '../../electron/core/paths.js';
import { needTool } from '../support/tools.js';

const ROOT = findRepoRoot();
const MODEL_DIR = join(ROOT, 'models', 'stories260K');
const PACK_PY = join(ROOT, 'android-agent', 'test', 'pack_stage.py');
const QUANTIZED: WeightFormat[] = ['int8', 'q4_0', 'fp4'];

/** Deterministic PRNG (mulberry32) and normal samples (Box-Muller), so failures reproduce. */
function rng(seed: number): { uniform: () => number; normal: (std: number) => number } {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (std: number): number => std * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return { uniform, normal };
}

interface Case { name: string; rows: number; cols: number; w: Float32Array }

function randomCase(name: string, rows: number, cols: number, seed: number, gen: (r: ReturnType<typeof rng>, i: number) => number): Case {
  const r = rng(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) w[i] = gen(r, i);
  return { name, rows, cols, w };
}

/** Rows of 32-element groups that exercise the corners of the rounding rules. */
function edgeCase(): Case {
  const groups: number[][] = [];
  const g = (f: (j: number) => number): void => void groups.push(Array.from({ length: QUANT_GROUP }, (_, j) => f(j)));
  g(() => 0); // all zero: d = 0, scale 0
  g((j) => (j % 2 ? -0 : 0)); // signed zeros (std::min / std::max keep the first)
  g((j) => (j === 0 ? -0 : 0));
  g(() => 0.3); // constant: fp4 d = 0
  g(() => -1.7);
  g((j) => 0.25 * j - 4); // a ramp: -4 has the largest magnitude
  g((j) => (j === 5 ? 1.5 : j === 6 ? -1.5 : 0.01 * j)); // magnitude tie: the first one sets q4_0's sign
  g((j) => (j === 0 ? -8 : (j % 17) - 8 + 0.5)); // q4_0 with d = 1: x + 8.5 lands on integers and halves
  g((j) => (j === 0 ? 0 : j === 1 ? 15 : (j % 15) + 0.5)); // fp4 with d = 1, m = 0: lround ties away from zero
  g((j) => (j === 0 ? 127 : (j % 64) - 32 + 0.5)); // int8 row max 127 -> s = 1: ties
  g((j) => (j === 0 ? -127 : -((j % 40) + 0.5)));
  g((j) => (j - 16) * 3e-6); // half-subnormal scales
  g((j) => (j - 16) * 1e-9);
  g((j) => (j - 16) * 1e-40); // float subnormals: 1 / scale overflows, so the scale counts as 0 (inverse_scale)
  g((j) => (j % 2 ? 1 : -1) * (60000 + 500 * j)); // half overflow of d, m and f16 values
  g((j) => Math.fround(1 / (j + 1)) * (j % 3 === 0 ? -1 : 1));
  g((j) => 65504 * (j % 2 ? 1 : -1) * (j / 31));
  g((j) => (j === 31 ? 1e-3 : 1e-7 * j)); // the max at the end of the group
  const cols = 4 * QUANT_GROUP;
  const rows = Math.ceil(groups.length / 4);
  const w = new Float32Array(rows * cols);
  groups.forEach((vals, i) => w.set(vals, i * QUANT_GROUP));
  return { name: 'edge cases', rows, cols, w };
}

function cases(): Case[] {
  return [
    randomCase('N(0, 0.02) 64x256', 64, 256, 1, (r) => r.normal(0.02)),
    randomCase('U(-1, 1) 17x96', 17, 96, 2, (r) => 2 * r.uniform() - 1),
    randomCase('heavy tails 9x160', 9, 160, 3, (r) => r.normal(0.02) * (r.uniform() < 0.02 ? 50 : 1)),
    randomCase('positive 5x64', 5, 64, 4, (r) => 0.5 + r.uniform()),
    randomCase('wide range 8x128', 8, 128, 5, (r) => r.normal(1) * 10 ** Math.floor(r.uniform() * 12 - 8)),
    randomCase('grid values 6x64', 6, 64, 6, (r) => Math.round(r.normal(8)) / 4), // many exact ties
    edgeCase(),
  ];
}

/** Quantises every case in every format with pack_stage.py (one process): bytes keyed by `${case}/${format}`. */
async function pythonQuantize(dir: string, jobs: { key: string; format: WeightFormat; c: Case }[]): Promise<Map<string, Buffer>> {
  const manifest = [];
  for (const [i, j] of jobs.entries()) {
    const inPath = join(dir, `job${i}.f32`);
    await writeFile(inPath, new Uint8Array(j.c.w.buffer, j.c.w.byteOffset, j.c.w.byteLength));
    manifest.push({ format: j.format, rows: j.c.rows, cols: j.c.cols, in: inPath, out: join(dir, `job${i}.${j.format}`) });
  }
  const manifestPath = join(dir, 'jobs.json');
  await writeFile(manifestPath, JSON.stringify(manifest));
  const py = spawnSync('python3', [PACK_PY, '--quantize-jobs', manifestPath], { encoding: 'utf8' });
  assert.equal(py.status, 0, `pack_stage.py --quantize-jobs failed: ${py.stderr}`);
  const out = new Map<string, Buffer>();
  for (const [i, j] of jobs.entries()) out.set(j.key, await readFile(manifest[i]!.out));
  return out;
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `lengths ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `byte ${i}: ${a[i]} vs ${b[i]}`;
  return 'none';
}

test('quantizeMatrix matches pack_stage.py byte for byte in every format', async (t) => {
  const skip = needTool('python3');
  if (skip) return t.skip(skip);
  const dir = await mkdtemp(join(tmpdir(), 'cfd-quant-'));
  try {
    const all = cases();
    // int8 has no group constraint: odd shapes exercise the padding before the scale plane.
    all.push(randomCase('int8 odd 3x5', 3, 5, 7, (r) => r.normal(0.02)), randomCase('1x1', 1, 1, 8, (r) => r.normal(1)));
    const jobs = [];
    for (const c of all) {
      for (const format of WEIGHT_FORMATS) {
        if ((format === 'q4_0' || format === 'fp4') && c.cols % QUANT_GROUP !== 0) continue;
        jobs.push({ key: `${c.name}/${format}`, format, c });
      }
    }
    assert.equal(jobs.length, 7 * 5 + 2 * 3);
    const python = await pythonQuantize(dir, jobs);
    for (const { key, format, c } of jobs) {
      const ours = quantizeMatrix(format, c.w, c.rows, c.cols);
      assert.equal(ours.byteLength, matrixBytes(format, c.rows, c.cols), `${key}: size`);
      const theirs = python.get(key)!;
      assert.ok(Buffer.from(ours).equals(theirs), `${key}: TS and Python differ at ${firstDifference(ours, theirs)}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sizes follow weights.h and grouped formats refuse column counts that are not multiples of 32', () => {
  assert.equal(matrixBytes('f32', 3, 5), 60);
  assert.equal(matrixBytes('f16', 3, 5), 30);
  assert.equal(matrixBytes('int8', 3, 5), 16 + 12); // 15 codes, padded to 16, 3 scales
  assert.equal(matrixBytes('q4_0', 2, 64), 2 * 2 * 18);
  assert.equal(matrixBytes('fp4', 2, 64), 2 * 2 * 20);
  assert.equal(matrixBytes('q4_0', 64, 172), 0);
  assert.equal(matrixBytes('fp4', 64, 172), 0);
  assert.throws(() => quantizeMatrix('q4_0', new Float32Array(172), 1, 172), /q4_0 needs a column count that is a multiple of 32/);
  assert.throws(() => quantizeMatrix('fp4', new Float32Array(40), 1, 40), /fp4 needs a column count that is a multiple of 32/);
  assert.throws(() => quantizeMatrix('int8', new Float32Array(5), 2, 3), /5 values for a \[2, 3\] matrix/);
});

test('dequantised weights are within each format\'s error bound of the f32 originals', () => {
  for (const c of cases().slice(0, 4)) {
    for (const format of WEIGHT_FORMATS) {
      const q = quantizeMatrix(format, c.w, c.rows, c.cols);
      const back = dequantizeMatrix(format, q, c.rows, c.cols);
      const unit = format === 'int8' ? c.cols : format === 'f16' || format === 'f32' ? 1 : QUANT_GROUP;
      let num = 0;
      let den = 0;
      for (let u = 0; u < c.w.length; u += unit) {
        const orig = c.w.subarray(u, u + unit);
        const bound = quantErrorBound(format, orig);
        for (let j = 0; j < unit; j++) {
          const err = Math.abs(orig[j]! - back[u + j]!);
          assert.ok(err <= bound, `${c.name} ${format}: element ${u + j}: |${orig[j]} - ${back[u + j]}| = ${err} > bound ${bound}`);
          num += err * err;
          den += orig[j]! * orig[j]!;
        }
      }
      const rel = Math.sqrt(num / den);
      // Relative RMS ceilings for well-behaved data (4-bit: 1/16 of the range per step; int8: 1/254 of the row
      // max); outliers (heavy tails) widen the steps of their whole row or group.
      const ceiling = { f32: 0, f16: 1e-3, int8: 0.02, q4_0: 0.2, fp4: 0.12 }[format];
      if (!c.name.startsWith('heavy')) assert.ok(rel <= ceiling, `${c.name} ${format}: relative RMS error ${rel} > ${ceiling}`);
    }
  }
});

/** The tensor table of a stage file (docs/stage-format.md), read here independently of the packer. */
function stageTable(bytes: Buffer): { name: string; dtype: number; dims: number[]; offset: number; nbytes: number; crc: number }[] {
  const out = [];
  let p = 96;
  for (let i = 0; i < bytes.readUInt32LE(12); i++) {
    const len = bytes.readUInt16LE(p);
    const name = bytes.toString('utf8', p + 2, p + 2 + len);
    p += 2 + len;
    const dtype = bytes.readUInt8(p);
    const ndim = bytes.readUInt8(p + 1);
    p += 2;
    const dims = [];
    for (let d = 0; d < ndim; d++, p += 8) dims.push(Number(bytes.readBigUInt64LE(p)));
    out.push({ name, dtype, dims, offset: Number(bytes.readBigUInt64LE(p)), nbytes: Number(bytes.readBigUInt64LE(p + 8)), crc: bytes.readUInt32LE(p + 16) });
    p += 20;
  }
  return out;
}

test('quantised stages of stories260K are identical to pack_stage.py\'s, with the f16 fallback reported', async (t) => {
  const skip = needTool('python3');
  if (skip) return t.skip(skip);
  const dir = await mkdtemp(join(tmpdir(), 'cfd-qstage-'));
  try {
    const folder = await openModelFolder(MODEL_DIR);
    const specs = [
      { tag: 'whole', spec: { layerStart: 0, layerEnd: 5, hasEmbedding: true, hasHead: true } },
      { tag: 'last', spec: { layerStart: 2, layerEnd: 5, hasEmbedding: false, hasHead: true } },
    ];
    const formats = ['f16', ...QUANTIZED] as WeightFormat[];
    const stageArgs = formats.flatMap((f) => specs.flatMap(({ tag, spec }) => ['--stage', `${tag}-${f}.py:${spec.layerStart}:${spec.layerEnd}:${f}`]));
    const py = spawnSync('python3', [PACK_PY, '--hf', MODEL_DIR, '--out-dir', dir, ...stageArgs], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    for (const format of formats) {
      for (const { tag, spec } of specs) {
        const ours = join(dir, `${tag}-${format}.ts.stage`);
        // A small chunk size forces quantised matrices to stream in several row chunks.
        const r = await packStage(folder, spec, ours, { weightFormat: format, chunkBytes: 4096 });
        const a = await readFile(ours);
        const b = await readFile(join(dir, `${tag}-${format}.py.stage`));
        assert.ok(a.equals(b), `${tag} ${format}: TS and Python stage files differ at ${firstDifference(a, b)}`);
        assert.equal(r.sha256, createHash('sha256').update(a).digest('hex'));
        assert.equal(r.weightFormat, format);

        const table = stageTable(a);
        assert.equal(a.readUInt32LE(8), 1, 'format_version stays 1');
        assert.deepEqual(r.tensors.map((x) => x.name), table.map((x) => x.name));
        for (const [i, e] of table.entries()) {
          const packed = r.tensors[i]!;
          assert.equal(e.dtype, WEIGHT_FORMATS.indexOf(packed.format), `${e.name}: dtype code`);
          assert.equal(e.nbytes, packed.nbytes);
          assert.equal(crc32(a.subarray(e.offset, e.offset + e.nbytes)) >>> 0, e.crc, `${e.name}: CRC`);
          if (e.dims.length === 1) assert.equal(packed.format, 'f32', `${e.name}: norms stay f32`);
          else if (e.dims[1]! % 32 !== 0 && (format === 'q4_0' || format === 'fp4')) {
            assert.equal(packed.format, 'f16', `${e.name}: grouped format falls back to f16`);
            assert.match(packed.fallback ?? '', new RegExp(`${format} needs a column count that is a multiple of 32; \\[64, 172\\] has 172 columns: stored as f16`));
          } else {
            assert.equal(packed.format, format, `${e.name}: stored as ${format}`);
            assert.equal(e.nbytes, matrixBytes(format, e.dims[0]!, e.dims[1]!));
          }
        }
        const downs = table.filter((e) => e.name.endsWith('down_proj.weight')).map((e) => e.name);
        if (format === 'q4_0' || format === 'fp4') {
          assert.deepEqual(r.fallbacks.map((f) => f.name), downs, 'every down_proj [64, 172] falls back');
          assert.ok(r.fallbacks.every((f) => f.requested === format && f.stored === 'f16'));
        } else {
          assert.deepEqual(r.fallbacks, []);
        }
        // The plan predicts the file size.
        assert.equal(planStageLayout(folder, spec, { weightFormat: format }).fileBytes, a.length);
      }
    }
    // The default stays f32 everywhere (callers that pass no options see no change).
    const def = await packStage(folder, specs[0]!.spec, join(dir, 'default.stage'));
    assert.equal(def.weightFormat, 'f32');
    assert.ok(def.tensors.every((x) => x.format === 'f32') && def.fallbacks.length === 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('packStageInWorker gives the same file, reports progress, and passes errors and aborts through', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cfd-qworker-'));
  try {
    const spec = { layerStart: 0, layerEnd: 5, hasEmbedding: true, hasHead: true };
    const direct = await packStage(MODEL_DIR, spec, join(dir, 'direct.stage'), { weightFormat: 'q4_0' });
    let last = { bytesDone: 0, bytesTotal: -1, tensorCount: 0 };
    let calls = 0;
    const viaWorker = await packStageInWorker(await openModelFolder(MODEL_DIR), spec, join(dir, 'worker.stage'), {
      weightFormat: 'q4_0',
      onProgress: (p) => {
        assert.ok(p.bytesDone >= last.bytesDone, 'progress only grows');
        last = p;
        calls++;
      },
    });
    assert.deepEqual(viaWorker, direct);
    assert.ok(calls >= direct.tensorCount, `progress reported per chunk (${calls} calls)`);
    assert.equal(last.bytesDone, last.bytesTotal);
    assert.equal(last.tensorCount, 47);

    await assert.rejects(
      packStageInWorker(MODEL_DIR, { layerStart: 2, layerEnd: 5, hasEmbedding: true, hasHead: true }, join(dir, 'bad.stage')),
      /only the first stage \(layerStart 0\) can hold the embedding/,
    );
    const ac = new AbortController();
    const aborted = packStageInWorker(MODEL_DIR, spec, join(dir, 'aborted.stage'), {
      weightFormat: 'fp4',
      chunkBytes: 4096,
      signal: ac.signal,
      onProgress: () => ac.abort(new Error('user cancelled')),
    });
    await assert.rejects(aborted, /user cancelled/);
    // Let the worker finish removing its temporary file.
    for (let i = 0; i < 50 && (await readdir(dir)).length > 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual((await readdir(dir)).sort(), ['direct.stage', 'worker.stage'], 'no partial or temporary file is left');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
