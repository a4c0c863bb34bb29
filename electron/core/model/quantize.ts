// Host-side quantisation of base-weight matrices into the kernels' storage formats (kernels/include/confidant/
// weights.h). quantizeMatrix is bit-identical to the C++ reference quantize_matrix (kernels/src/formats/formats.cpp),
// which is the numerical spec: every step the C++ does in float is rounded to float here (Math.fround) in the same
// order, casts truncate like static_cast<int>, std::lround rounds half away from zero, and halves round to nearest
// even (util/f16.ts). Finite inputs give identical bytes; the packer refuses non-finite weights before calling this.
//
// Not a kernel: no SIMD, no matmul. dequantizeRow mirrors dequantize_row for tests and error reports.
import { f16BitsToF32, f32ToF16Bits } from '../util/f16.js';

/** Storage format codes, equal to confidant::WDType and to the stage-file dtype codes (docs/stage-format.md). */
export const WeightDType = { f32: 0, f16: 1, int8: 2, q4_0: 3, fp4: 4 } as const;
export type WeightFormat = keyof typeof WeightDType;
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'f16', 'int8', 'q4_0', 'fp4'];

/** Elements per quantisation group of the grouped formats (q4_0, fp4); a row's column count must be a multiple. */
export const QUANT_GROUP = 32;
const Q4_BLOCK_BYTES = 2 + QUANT_GROUP / 2; // half d + 16 nibble bytes (llama.cpp block_q4_0)
const FP4_BLOCK_BYTES = 4 + QUANT_GROUP / 2; // half d + half m + 16 nibble bytes

export function weightFormatName(code: number): WeightFormat {
  const f = WEIGHT_FORMATS[code];
  if (f === undefined) throw new Error(`unknown weight dtype code ${code}`);
  return f;
}

export function isWeightFormat(s: unknown): s is WeightFormat {
  return typeof s === 'string' && (WEIGHT_FORMATS as readonly string[]).includes(s);
}

export function isGroupedFormat(f: WeightFormat): boolean {
  return f === 'q4_0' || f === 'fp4';
}

/** Bytes of one row of `cols` elements (int8: codes only). Mirrors wdtype_row_bytes. */
export function rowBytes(f: WeightFormat, cols: number): number {
  switch (f) {
    case 'f32': return cols * 4;
    case 'f16': return cols * 2;
    case 'int8': return cols;
    case 'q4_0': return Math.floor(cols / QUANT_GROUP) * Q4_BLOCK_BYTES;
    case 'fp4': return Math.floor(cols / QUANT_GROUP) * FP4_BLOCK_BYTES;
  }
}

/** Byte offset of the int8 format's per-row f32 scales: after the rows*cols codes, rounded up to 4. */
export function int8ScalesOffset(rows: number, cols: number): number {
  return Math.ceil((rows * cols) / 4) * 4;
}

/** Total bytes of a rows x cols matrix (int8: codes, padding to 4, rows f32 scales); 0 when a grouped format
 * cannot hold it (cols not a multiple of 32). Mirrors wdtype_matrix_bytes. */
export function matrixBytes(f: WeightFormat, rows: number, cols: number): number {
  if (isGroupedFormat(f) && cols % QUANT_GROUP !== 0) return 0;
  const body = rowBytes(f, cols) * rows;
  return f === 'int8' ? int8ScalesOffset(rows, cols) + rows * 4 : body;
}

const INT_MIN = -2147483648;
const fr = Math.fround;
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** static_cast<int>(float) as x86-64 does it (cvttss2si): truncation, and INT_MIN for NaN or out of range. */
function truncToInt(v: number): number {
  return v > -2147483649 && v < 2147483648 ? Math.trunc(v) : INT_MIN;
}

/**
 * static_cast<int>(std::lround(float)) on x86-64 glibc: half away from zero; NaN and out-of-range give LONG_MIN,
 * whose low 32 bits are 0. Only finite, small arguments occur for finite weights.
 */
function lroundToInt(v: number): number {
  if (!(Math.abs(v) < 9223372036854775808)) return 0;
  const r = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
  return r | 0; // long -> int keeps the low 32 bits
}

/**
 * 1 / scale in float, or 0 when that is not finite (a zero or subnormal scale), as formats.cpp's inverse_scale:
 * every code then is the one for 0 (q4_0, int8) or for the group minimum (fp4), instead of NaN or infinity.
 */
function inverseScale(scale: number): number {
  const inv = fr(1 / scale);
  return Number.isFinite(inv) ? inv : 0;
}

/** half -> float: exact, so no rounding is involved. */
function halfValue(bits: number): number {
  return f16BitsToF32(bits);
}

function quantizeGroupQ40(out: Uint8Array, o: number, x: Float32Array, xo: number): void {
  // llama.cpp's quantize_row_q4_0_ref: the value of largest magnitude (first one on ties) maps to -8.
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QUANT_GROUP; j++) {
    const v = x[xo + j]!;
    const a = Math.abs(v);
    if (a > amax) {
      amax = a;
      max = v;
    }
  }
  const d = fr(max / -8);
  const id = inverseScale(d);
  const dh = f32ToF16Bits(d);
  out[o] = dh & 0xff;
  out[o + 1] = dh >>> 8;
  const half = QUANT_GROUP / 2;
  for (let j = 0; j < half; j++) {
    const q0 = Math.min(15, truncToInt(fr(fr(x[xo + j]! * id) + 8.5)));
    const q1 = Math.min(15, truncToInt(fr(fr(x[xo + j + half]! * id) + 8.5)));
    out[o + 2 + j] = (q0 | (q1 << 4)) & 0xff;
  }
}

function quantizeGroupFp4(out: Uint8Array, o: number, x: Float32Array, xo: number): void {
  // Asymmetric: 16 levels from the group minimum to its maximum, codes picked with the stored (half) d and m.
  let lo = x[xo]!;
  let hi = lo;
  for (let j = 1; j < QUANT_GROUP; j++) {
    const v = x[xo + j]!;
    if (v < lo) lo = v; // std::min(lo, v)
    if (hi < v) hi = v; // std::max(hi, v)
  }
  const dh = f32ToF16Bits(fr(fr(hi - lo) / 15));
  const mh = f32ToF16Bits(lo);
  const d = halfValue(dh);
  const m = halfValue(mh);
  const id = inverseScale(d);
  out[o] = dh & 0xff;
  out[o + 1] = dh >>> 8;
  out[o + 2] = mh & 0xff;
  out[o + 3] = mh >>> 8;
  const half = QUANT_GROUP / 2;
  for (let j = 0; j < half; j++) {
    const q0 = Math.min(15, Math.max(0, lroundToInt(fr(fr(x[xo + j]! - m) * id))));
    const q1 = Math.min(15, Math.max(0, lroundToInt(fr(fr(x[xo + j + half]! - m) * id))));
    out[o + 4 + j] = q0 | (q1 << 4);
  }
}

function quantizeInt8(out: Uint8Array, w: Float32Array, rows: number, cols: number): void {
  const scales = new DataView(out.buffer, out.byteOffset + int8ScalesOffset(rows, cols), rows * 4);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let amax = 0;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(w[base + c]!);
      if (amax < a) amax = a; // std::max(amax, a)
    }
    const s = fr(amax / 127);
    const is = inverseScale(s);
    scales.setFloat32(r * 4, s, true);
    for (let c = 0; c < cols; c++) out[base + c] = lroundToInt(fr(w[base + c]! * is)) & 0xff;
  }
}

/**
 * Quantises a rows x cols row-major f32 matrix (Hugging Face layout: rows = out features) into `format`, returning
 * exactly matrixBytes(format, rows, cols) bytes, identical to confidant::quantize_matrix. Throws when a grouped
 * format gets a column count that is not a multiple of 32 (the packer falls back to f16 before that).
 */
export function quantizeMatrix(format: WeightFormat, w: Float32Array, rows: number, cols: number): Uint8Array {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new Error(`quantizeMatrix: shape [${rows}, ${cols}] must be non-negative integers`);
  }
  if (w.length !== rows * cols) throw new Error(`quantizeMatrix: ${w.length} values for a [${rows}, ${cols}] matrix`);
  if (isGroupedFormat(format) && cols % QUANT_GROUP !== 0) {
    throw new Error(`${format} needs a column count that is a multiple of ${QUANT_GROUP}, got [${rows}, ${cols}]`);
  }
  const out = new Uint8Array(matrixBytes(format, rows, cols));
  const n = rows * cols;
  switch (format) {
    case 'f32':
      out.set(new Uint8Array(w.buffer, w.byteOffset, n * 4));
      if (!littleEndian) {
        const dv = new DataView(out.buffer);
        for (let i = 0; i < n; i++) dv.setFloat32(i * 4, w[i]!, true);
      }
      break;
    case 'f16':
      for (let i = 0; i < n; i++) {
        const h = f32ToF16Bits(w[i]!);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      break;
    case 'int8':
      quantizeInt8(out, w, rows, cols);
      break;
    case 'q4_0':
      for (let g = 0; g < n / QUANT_GROUP; g++) quantizeGroupQ40(out, g * Q4_BLOCK_BYTES, w, g * QUANT_GROUP);
      break;
    case 'fp4':
      for (let g = 0; g < n / QUANT_GROUP; g++) quantizeGroupFp4(out, g * FP4_BLOCK_BYTES, w, g * QUANT_GROUP);
      break;
  }
  return out;
}

/**
 * Row `r` of a packed rows x cols matrix as f32 values, computed as dequantize_row does (float arithmetic:
 * q * scale, (q - 8) * d, q * d + m). `data` holds the whole matrix (matrixBytes(format, rows, cols) bytes).
 */
export function dequantizeRow(format: WeightFormat, data: Uint8Array, rows: number, cols: number, r: number, out = new Float32Array(cols)): Float32Array {
  if (r < 0 || r >= rows) throw new Error(`dequantizeRow: row ${r} outside [0, ${rows})`);
  const need = matrixBytes(format, rows, cols);
  if (need === 0 && rows * cols > 0) throw new Error(`${format} cannot hold a [${rows}, ${cols}] matrix`);
  if (data.byteLength < need) throw new Error(`dequantizeRow: ${data.byteLength} bytes, a ${format} [${rows}, ${cols}] matrix needs ${need}`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const row = r * rowBytes(format, cols);
  switch (format) {
    case 'f32':
      for (let c = 0; c < cols; c++) out[c] = dv.getFloat32(row + 4 * c, true);
      break;
    case 'f16':
      for (let c = 0; c < cols; c++) out[c] = halfValue(dv.getUint16(row + 2 * c, true));
      break;
    case 'int8': {
      const s = dv.getFloat32(int8ScalesOffset(rows, cols) + 4 * r, true);
      for (let c = 0; c < cols; c++) out[c] = fr(dv.getInt8(row + c) * s);
      break;
    }
    case 'q4_0':
      for (let g = 0; g < cols / QUANT_GROUP; g++) {
        const b = row + g * Q4_BLOCK_BYTES;
        const d = halfValue(dv.getUint16(b, true));
        for (let j = 0; j < QUANT_GROUP / 2; j++) {
          const byte = data[b + 2 + j]!;
          out[g * QUANT_GROUP + j] = fr(((byte & 0x0f) - 8) * d);
          out[g * QUANT_GROUP + j + QUANT_GROUP / 2] = fr(((byte >>> 4) - 8) * d);
        }
      }
      break;
    case 'fp4':
      for (let g = 0; g < cols / QUANT_GROUP; g++) {
        const b = row + g * FP4_BLOCK_BYTES;
        const d = halfValue(dv.getUint16(b, true));
        const m = halfValue(dv.getUint16(b + 2, true));
        for (let j = 0; j < QUANT_GROUP / 2; j++) {
          const byte = data[b + 4 + j]!;
          out[g * QUANT_GROUP + j] = fr(fr((byte & 0x0f) * d) + m);
          out[g * QUANT_GROUP + j + QUANT_GROUP / 2] = fr(fr((byte >>> 4) * d) + m);
        }
      }
      break;
  }
  return out;
}

/** Dequantises a whole packed matrix (tests and error reports; allocates rows * cols floats). */
export function dequantizeMatrix(format: WeightFormat, data: Uint8Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) dequantizeRow(format, data, rows, cols, r, out.subarray(r * cols, (r + 1) * cols));
  return out;
}

/**
 * Worst-case |w - dequantised w| for one quantisation unit, from the unit's own f32 values (int8: a row; q4_0, fp4:
 * a group of 32; f16: one value). Used by tests as the acceptance bound; includes the rounding of the half scale(s)
 * and of the float arithmetic, and q4_0's clamp of the top code (+8 is not representable: up to one step).
 */
export function quantErrorBound(format: WeightFormat, unit: ArrayLike<number>): number {
  let amax = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < unit.length; i++) {
    const v = unit[i]!;
    amax = Math.max(amax, Math.abs(v));
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const u = 2 ** -10; // relative half rounding, with margin (half has 11 significant bits)
  const tiny = 2 ** -24; // absolute slack per half rounding: a half subnormal step is 2^-24
  switch (format) {
    case 'f32':
      return 0;
    case 'f16':
      return amax * 2 ** -11 + 2 ** -25;
    case 'int8':
      // half a step; the code is picked from x * (1 / s) in float, off by up to ~127 * 3 * 2^-24 of a step.
      return (amax / 127) * (0.5 + 1e-4) + amax * 2 ** -22;
    case 'q4_0':
      // step d = amax / 8; rounding to the nearest step, except that the opposite extreme clamps to +7 (one step).
      return (amax / 8) * (1 + 8 * u) + 8 * tiny;
    case 'fp4': {
      const d = (hi - lo) / 15;
      return d * (0.5 + 16 * u) + Math.abs(lo) * u + amax * 2 ** -22 + 16 * tiny;
    }
  }
}
