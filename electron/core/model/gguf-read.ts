// Lazy GGUF reader (v2 and v3): parses the header (typed metadata, tensor infos) once, then reads one tensor's rows
// at a time from its offset and dequantises them to f32. Not model-specific: gguf-model.ts maps llama.cpp names and
// layouts back to Hugging Face ones. The writer is gguf-write.ts; the layout is described there.
//
// Tensor types read: F32, F16, BF16, Q8_0 ({f16 d; i8 qs[32]}, value d*q) and Q4_0 ({f16 d; u8 qs[16]}, value
// (q-8)*d, byte j holding element j in its low nibble and j+16 in its high one): ggml-common.h's blocks. Other types
// are recognised (sizes, so offsets can be checked) but refused when read, naming the tensor and the type.
import { open, type FileHandle } from 'node:fs/promises';
import { f16BitsToF32 } from '../util/f16.js';

/** ggml_type: [code, elements per block, bytes per block]. */
const GGML_TYPES = {
  F32: [0, 1, 4], F16: [1, 1, 2], Q4_0: [2, 32, 18], Q4_1: [3, 32, 20], Q5_0: [6, 32, 22], Q5_1: [7, 32, 24],
  Q8_0: [8, 32, 34], Q8_1: [9, 32, 36], Q2_K: [10, 256, 84], Q3_K: [11, 256, 110], Q4_K: [12, 256, 144],
  Q5_K: [13, 256, 176], Q6_K: [14, 256, 210], Q8_K: [15, 256, 292], I8: [24, 1, 1], I16: [25, 1, 2], I32: [26, 1, 4],
  I64: [27, 1, 8], F64: [28, 1, 8], BF16: [30, 1, 2],
} as const;
export type GgmlType = keyof typeof GGML_TYPES;
export const DEQUANTISED_TYPES: readonly GgmlType[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'];
const TYPE_BY_CODE = new Map<number, GgmlType>(Object.entries(GGML_TYPES).map(([k, v]) => [v[0], k as GgmlType]));

export type GgufMetaValue = number | bigint | boolean | string | GgufMetaValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] is the contiguous dimension (an HF [rows, cols] matrix is ne [cols, rows]). */
  ne: number[];
  type: GgmlType;
  /** Absolute file offset of the data. */
  fileOffset: number;
  nbytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  fileBytes: number;
  alignment: number;
  /** Absolute offset of the data section. */
  dataStart: number;
  metadata: Map<string, GgufMetaValue>;
  tensors: Map<string, GgufTensorInfo>;
}

/** Thrown by the cursor when the bytes read so far end inside the header: read more and parse again. */
class NeedMore extends Error {}

/** Little-endian cursor over the header bytes read so far; `complete` when they are the whole file. */
class Cursor {
  pos = 0;
  constructor(private readonly buf: Buffer, private readonly complete: boolean, private readonly path: string) {}
  private need(n: number, what: string): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.complete) throw new Error(`${this.path}: truncated GGUF: the file ends inside the header (reading ${what})`);
    throw new NeedMore();
  }
  u8(w: string): number { this.need(1, w); return this.buf.readUInt8(this.pos++); }
  u32(w: string): number { this.need(4, w); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v; }
  u64(w: string): bigint { this.need(8, w); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v; }
  /** A u64 count or size that must fit a JS number and stay below `max`. */
  count(w: string, max: number): number {
    const v = this.u64(w);
    if (v > BigInt(max)) throw new Error(`${this.path}: GGUF ${w} ${v} is implausible (over ${max}): the file is corrupt`);
    return Number(v);
  }
  str(w: string): string {
    const n = this.count(`${w} length`, 1 << 30);
    this.need(n, w);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  scalar(type: number, w: string): GgufMetaValue {
    switch (type) {
      case 0: return this.u8(w);
      case 1: this.need(1, w); return this.buf.readInt8(this.pos++);
      case 2: this.need(2, w); this.pos += 2; return this.buf.readUInt16LE(this.pos - 2);
      case 3: this.need(2, w); this.pos += 2; return this.buf.readInt16LE(this.pos - 2);
      case 4: return this.u32(w);
      case 5: this.need(4, w); this.pos += 4; return this.buf.readInt32LE(this.pos - 4);
      case 6: this.need(4, w); this.pos += 4; return this.buf.readFloatLE(this.pos - 4);
      case 7: return this.u8(w) !== 0;
      case 8: return this.str(w);
      case 10: return this.u64(w);
      case 11: this.need(8, w); this.pos += 8; return this.buf.readBigInt64LE(this.pos - 8);
      case 12: this.need(8, w); this.pos += 8; return this.buf.readDoubleLE(this.pos - 8);
      default: throw new Error(`${this.path}: GGUF ${w} has unknown value type ${type}: the file is corrupt or newer than this reader`);
    }
  }
  value(type: number, w: string): GgufMetaValue {
    if (type !== 9) return this.scalar(type, w);
    const itemType = this.u32(`${w} item type`);
    const n = this.count(`${w} item count`, 1 << 28);
    const out: GgufMetaValue[] = [];
    for (let i = 0; i < n; i++) out.push(this.value(itemType, `${w}[${i}]`));
    return out;
  }
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Bytes of `count` elements of `type`; throws when count is not a whole number of blocks. */
export function ggmlTypeBytes(type: GgmlType, count: number, where: string): number {
  const [, block, bytes] = GGML_TYPES[type];
  if (count % block !== 0) throw new Error(`${where}: ${count} elements are not a whole number of ${type} blocks of ${block}`);
  return (count / block) * bytes;
}

function parseHeader(path: string, buf: Buffer, complete: boolean, fileBytes: number): GgufFile {
  const c = new Cursor(buf, complete, path);
  c.u32('magic');
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${path}: not a GGUF file (the magic is not "GGUF")`);
  const version = c.u32('version');
  if (version !== 2 && version !== 3) throw new Error(`${path}: GGUF version ${version} is not supported (this reader reads versions 2 and 3)`);
  const tensorCount = c.count('tensor count', 1 << 24);
  const kvCount = c.count('metadata count', 1 << 24);
  const metadata = new Map<string, GgufMetaValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.str(`metadata key ${i}`);
    metadata.set(key, c.value(c.u32(`type of ${key}`), key));
  }
  const alignment = metadata.get('general.alignment') ?? 32;
  if (typeof alignment !== 'number' || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new Error(`${path}: general.alignment ${String(alignment)} must be a power of two`);
  }
  const infos: { name: string; ne: number[]; type: GgmlType; offset: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = c.str(`tensor ${i} name`);
    const nDims = c.u32(`tensor "${name}" dimension count`);
    if (nDims < 1 || nDims > 4) throw new Error(`${path}: tensor "${name}" has ${nDims} dimensions (1..4 allowed): the file is corrupt`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) ne.push(c.count(`tensor "${name}" dimension ${d}`, 2 ** 40));
    const code = c.u32(`tensor "${name}" type`);
    const type = TYPE_BY_CODE.get(code);
    if (type === undefined) throw new Error(`${path}: tensor "${name}" has unknown ggml type ${code}`);
    infos.push({ name, ne, type, offset: c.count(`tensor "${name}" offset`, Number.MAX_SAFE_INTEGER) });
  }
  const dataStart = alignUp(c.pos, alignment);
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of infos) {
    const where = `${path}: tensor "${t.name}"`;
    if (tensors.has(t.name)) throw new Error(`${where} appears twice`);
    if (t.offset % alignment !== 0) throw new Error(`${where}: data offset ${t.offset} is not a multiple of the alignment ${alignment}`);
    const nbytes = ggmlTypeBytes(t.type, t.ne.reduce((a, b) => a * b, 1), where);
    const fileOffset = dataStart + t.offset;
    if (fileOffset + nbytes > fileBytes) {
      throw new Error(`${where}: data ends at byte ${fileOffset + nbytes} but the file has ${fileBytes} bytes: the file is truncated`);
    }
    tensors.set(t.name, { name: t.name, ne: t.ne, type: t.type, fileOffset, nbytes });
  }
  return { path, version, fileBytes, alignment, dataStart, metadata, tensors };
}

/** Reads and validates the header of `path` (metadata and tensor infos; no tensor data). */
export async function readGgufHeader(path: string): Promise<GgufFile> {
  const fh = await open(path, 'r');
  try {
    const fileBytes = (await fh.stat()).size;
    // Most headers are well under 1 MiB; a big vocabulary (merges) needs more: read a larger prefix and parse again.
    for (let size = Math.min(fileBytes, 1 << 20); ; size = Math.min(fileBytes, size * 4)) {
      const buf = Buffer.alloc(size);
      await readFully(fh, buf, 0, path);
      try {
        return parseHeader(path, buf, size === fileBytes, fileBytes);
      } catch (err) {
        if (!(err instanceof NeedMore)) throw err;
      }
    }
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, buf: Buffer, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`${path}: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

/** Rows of a tensor: ne[0] elements each; a 1-D tensor is one row. */
export function ggufRowShape(t: GgufTensorInfo): { rows: number; cols: number; rowBytes: number } {
  const cols = t.ne[0]!;
  const rows = t.ne.slice(1).reduce((a, b) => a * b, 1);
  return { rows, cols, rowBytes: t.nbytes / rows };
}

/** Dequantises `bytes` (whole rows of `type`) into `out`. */
export function dequantize(type: GgmlType, bytes: Uint8Array, out: Float32Array, where: string): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 'F32':
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
      return;
    case 'F16':
      for (let i = 0; i < out.length; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
      return;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
      for (let i = 0; i < out.length; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return;
    }
    case 'Q8_0':
      for (let b = 0; b < out.length / 32; b++) {
        const d = f16BitsToF32(dv.getUint16(34 * b, true));
        for (let j = 0; j < 32; j++) out[32 * b + j] = dv.getInt8(34 * b + 2 + j) * d;
      }
      return;
    case 'Q4_0':
      for (let b = 0; b < out.length / 32; b++) {
        const d = f16BitsToF32(dv.getUint16(18 * b, true));
        for (let j = 0; j < 16; j++) {
          const q = bytes[18 * b + 2 + j]!;
          out[32 * b + j] = ((q & 0x0f) - 8) * d;
          out[32 * b + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      return;
    default:
      throw new Error(`${where}: ggml type ${type} is not read by this reader (supported: ${DEQUANTISED_TYPES.join(', ')}); re-quantise the model to one of those`);
  }
}

/**
 * Rows `rowIndices` (ggml row order) of tensor `name`, dequantised to f32, concatenated. Consecutive indices are
 * read in one go, so a plain range costs one read. Checks the file still has the size seen in the header.
 */
export async function readGgufRows(file: GgufFile, name: string, rowIndices: readonly number[]): Promise<Float32Array> {
  const t = file.tensors.get(name);
  const where = `${file.path}: tensor "${name}"`;
  if (!t) throw new Error(`${file.path}: has no tensor "${name}"`);
  if (!DEQUANTISED_TYPES.includes(t.type)) dequantize(t.type, new Uint8Array(0), new Float32Array(0), where);
  const { rows, cols, rowBytes } = ggufRowShape(t);
  const out = new Float32Array(rowIndices.length * cols);
  const fh = await open(file.path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size !== file.fileBytes) throw new Error(`${file.path}: file size changed from ${file.fileBytes} to ${size} bytes since its header was read`);
    for (let i = 0; i < rowIndices.length; ) {
      let j = i + 1;
      while (j < rowIndices.length && rowIndices[j] === rowIndices[j - 1]! + 1) j++;
      const first = rowIndices[i]!;
      if (!Number.isInteger(first) || first < 0 || rowIndices[j - 1]! >= rows) throw new Error(`${where}: rows ${first}..${rowIndices[j - 1]} are outside its ${rows} rows`);
      const buf = Buffer.alloc((j - i) * rowBytes);
      await readFully(fh, buf, t.fileOffset + first * rowBytes, file.path);
      dequantize(t.type, buf, out.subarray(i * cols, j * cols), where);
      i = j;
    }
  } finally {
    await fh.close();
  }
  return out;
}
