// Weight error of each stage weight format against f32 (a tool, not a test): quantises the matrices the packer
// would quantise with the host quantiser (electron/core/model/quantize.ts, bit-identical to the kernels' reference)
// and prints, per format, the relative RMS error sqrt(sum (w - w')^2 / sum w^2) and the max |w - w'| over all of
// them, the storage bits per weight and the host quantisation speed. Two sets: a model folder (default the bundled
// stories260K, with the packer's f16 fallback for grouped formats on column counts that are not multiples of 32)
// and random N(0, 0.02) matrices of realistic shapes (2048x2048, 5632x2048: TinyLlama-1.1B's q/o and gate/up/down^T).
// Logits error needs the agent and comes later. The last line of output is the JSON of the table.
//
//   node build/test/bench/format-error.js [--model DIR] [--no-random]
import { join } from 'node:path';
import { openModelFolder, readModelTensorF32 } from '../../electron/core/model/model-folder.js';
import { chooseTensorFormat, isQuantizableTensor, stageTensorNames } from '../../electron/core/model/stage-pack.js';
import { tensorLocation } from '../../electron/core/model/model-folder.js';
import { WEIGHT_FORMATS, dequantizeRow, quantizeMatrix, type WeightFormat } from '../../electron/core/model/quantize.js';
import { findRepoRoot } from '../../electron/core/paths.js';

interface Matrix { name: string; rows: number; cols: number; w: Float32Array }

interface FormatError {
  format: WeightFormat;
  relRms: number;
  maxAbs: number;
  bitsPerWeight: number;
  /** Host quantisation throughput, millions of weights per second. */
  quantMWps: number;
  /** Matrices stored in another format (grouped formats on cols % 32 != 0: f16). */
  fallbacks: string[];
}

interface SetReport { set: string; matrices: number; weights: number; formats: FormatError[] }

function measure(set: string, mats: Matrix[], stored: (m: Matrix, f: WeightFormat) => WeightFormat): SetReport {
  const weights = mats.reduce((a, m) => a + m.rows * m.cols, 0);
  const formats: FormatError[] = [];
  for (const format of WEIGHT_FORMATS) {
    let sqErr = 0;
    let sqRef = 0;
    let maxAbs = 0;
    let bytes = 0;
    let quantMs = 0;
    const fallbacks: string[] = [];
    for (const m of mats) {
      const f = stored(m, format);
      if (f !== format) fallbacks.push(`${m.name} [${m.rows}, ${m.cols}] -> ${f}`);
      const t0 = performance.now();
      const q = quantizeMatrix(f, m.w, m.rows, m.cols);
      quantMs += performance.now() - t0;
      bytes += q.byteLength;
      const row = new Float32Array(m.cols);
      for (let r = 0; r < m.rows; r++) {
        dequantizeRow(f, q, m.rows, m.cols, r, row);
        const base = r * m.cols;
        for (let c = 0; c < m.cols; c++) {
          const w = m.w[base + c]!;
          const e = Math.abs(w - row[c]!);
          sqErr += e * e;
          sqRef += w * w;
          if (e > maxAbs) maxAbs = e;
        }
      }
    }
    formats.push({
      format,
      relRms: Math.sqrt(sqErr / sqRef),
      maxAbs,
      bitsPerWeight: (bytes * 8) / weights,
      quantMWps: weights / 1e6 / (quantMs / 1000),
      fallbacks,
    });
  }
  return { set, matrices: mats.length, weights, formats };
}

async function modelMatrices(dir: string): Promise<Matrix[]> {
  const folder = await openModelFolder(dir);
  const c = folder.config;
  const names = stageTensorNames(c, { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: true });
  const out: Matrix[] = [];
  for (const { name, dims } of names) {
    if (!isQuantizableTensor(name, dims)) continue;
    out.push({ name, rows: dims[0]!, cols: dims[1]!, w: await readModelTensorF32(folder, name) });
  }
  return out;
}

function randomMatrices(): Matrix[] {
  let a = 20240601 >>> 0; // mulberry32 + Box-Muller: reproducible
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => 0.02 * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return ([[2048, 2048], [5632, 2048]] as const).map(([rows, cols]) => {
    const w = new Float32Array(rows * cols);
    for (let i = 0; i < w.length; i++) w[i] = normal();
    return { name: `N(0, 0.02) ${rows}x${cols}`, rows, cols, w };
  });
}

function printTable(r: SetReport): void {
  console.log(`\n${r.set}: ${r.matrices} matrices, ${r.weights.toLocaleString('en')} weights`);
  console.log('format  bits/w  rel RMS err   max abs err   quantise M/s  fallbacks');
  for (const f of r.formats) {
    console.log(
      `${f.format.padEnd(6)}  ${f.bitsPerWeight.toFixed(2).padStart(6)}  ${f.relRms.toExponential(3).padStart(11)}  ${f.maxAbs.toExponential(3).padStart(12)}  ${f.quantMWps.toFixed(1).padStart(12)}  ${f.fallbacks.length ? `${f.fallbacks.length} -> f16` : ''}`,
    );
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const mi = args.indexOf('--model');
  const modelDir = mi >= 0 && args[mi + 1] ? args[mi + 1]! : join(findRepoRoot(), 'models', 'stories260K');
  const reports: SetReport[] = [];
  const mats = await modelMatrices(modelDir);
  const folder = await openModelFolder(modelDir);
  reports.push(measure(`model ${modelDir}`, mats, (m, f) => chooseTensorFormat(m.name, [m.rows, m.cols], tensorLocation(folder, m.name).info.dtype, { weightFormat: f }).format));
  if (!args.includes('--no-random')) reports.push(measure('random N(0, 0.02)', randomMatrices(), (_m, f) => f));
  for (const r of reports) printTable(r);
  console.log(JSON.stringify({ bench: 'format-error', reports }));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
