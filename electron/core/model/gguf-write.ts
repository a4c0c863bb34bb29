// Generic GGUF v3 writer: typed key/value metadata, tensor infos, tensor data aligned to `general.alignment`
// (32 by default), F32 and F16 tensors, streamed one tensor at a time to an atomically replaced file.
// Not model-specific (gguf-llama.ts maps a Llama folder onto it) and not a reader.
//
// Layout (ggml docs/gguf.md, little-endian): "GGUF" u32 version=3, u64 tensor_count, u64 kv_count; kv pairs
// (gguf string key = u64 length + UTF-8, u32 value type, value); tensor infos (string name, u32 n_dims,
// u64 ne[n_dims] with ne[0] the contiguous dimension, u32 ggml type, u64 offset relative to the data section);
// zero padding to the alignment; the data, every tensor starting at a multiple of the alignment.
import { writeFileAtomically, writeFully } from '../util/atomic-file.js';
import { f32ToF16Bits } from '../util/f16.js';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** gguf_type codes of metadata values. */
export const GGUF_VALUE_TYPE = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPE, 'array'>;

/** ggml_type codes of the tensor formats this writer produces. */
export const GGML_TYPE = { F32: 0, F16: 1 } as const;
export type GgmlTensorType = keyof typeof GGML_TYPE;
const GGML_TYPE_BYTES: Record<GgmlTensorType, number> = { F32: 4, F16: 2 };

/** A typed metadata value; u64/i64 take a bigint or a safe integer. */
export type GgufValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: number | bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; values: ArrayLike<number> }
  | { type: 'array'; itemType: 'string'; values: readonly string[] }
  | { type: 'array'; itemType: 'bool'; values: readonly boolean[] };

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the contiguous (innermost) dimension, so an HF [out, in] matrix is [in, out]. */
  ne: number[];
  type: GgmlTensorType;
  /** The values in memory order (converted to `type` while writing); a function is called once, when written. */
  data: Float32Array | (() => Promise<Float32Array>);
}

export interface GgufFile {
  /** Written in this order. `general.alignment` (u32) here changes the alignment. */
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
}

/** Growable little-endian byte sink for the header. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void { this.ensure(1); this.buf.writeUInt8(v, this.length); this.length += 1; }
  i8(v: number): void { this.ensure(1); this.buf.writeInt8(v, this.length); this.length += 1; }
  u16(v: number): void { this.ensure(2); this.buf.writeUInt16LE(v, this.length); this.length += 2; }
  i16(v: number): void { this.ensure(2); this.buf.writeInt16LE(v, this.length); this.length += 2; }
  u32(v: number): void { this.ensure(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.ensure(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  f32(v: number): void { this.ensure(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  f64(v: number): void { this.ensure(8); this.buf.writeDoubleLE(v, this.length); this.length += 8; }
  u64(v: number | bigint): void { this.ensure(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  i64(v: number | bigint): void { this.ensure(8); this.buf.writeBigInt64LE(BigInt(v), this.length); this.length += 8; }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeScalar(s: ByteSink, type: GgufScalarType, v: number | bigint | boolean | string, where: string): void {
  switch (type) {
    case 'string': return s.str(v as string);
    case 'bool': return s.u8(v ? 1 : 0);
    case 'u64': return s.u64(v as number | bigint);
    case 'i64': return s.i64(v as number | bigint);
    default: {
      const n = v as number;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`${where}: ${type} value ${String(v)} is not a finite number`);
      s[type](n);
    }
  }
}

function writeValue(s: ByteSink, key: string, v: GgufValue): void {
  s.str(key);
  s.u32(GGUF_VALUE_TYPE[v.type]);
  if (v.type !== 'array') return writeScalar(s, v.type, v.value, `GGUF key ${key}`);
  s.u32(GGUF_VALUE_TYPE[v.itemType]);
  s.u64(v.values.length);
  for (let i = 0; i < v.values.length; i++) writeScalar(s, v.itemType, v.values[i]!, `GGUF key ${key}[${i}]`);
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

export function ggufTensorBytes(t: Pick<GgufTensor, 'ne' | 'type'>): number {
  return t.ne.reduce((a, b) => a * b, 1) * GGML_TYPE_BYTES[t.type];
}

function alignmentOf(file: GgufFile): number {
  const entry = file.metadata.find(([k]) => k === 'general.alignment');
  if (!entry) return GGUF_DEFAULT_ALIGNMENT;
  const v = entry[1];
  // gguf.cpp refuses an alignment that is not a power of two.
  if (v.type !== 'u32' || v.value <= 0 || (v.value & (v.value - 1)) !== 0) throw new Error('GGUF general.alignment must be a u32 power of two');
  return v.value;
}

/** Header bytes (everything before the data section, padded) and each tensor's offset within the data section. */
export function encodeGgufHeader(file: GgufFile): { header: Buffer; offsets: number[]; dataBytes: number } {
  const align = alignmentOf(file);
  const s = new ByteSink();
  s.u8(0x47); s.u8(0x47); s.u8(0x55); s.u8(0x46); // "GGUF"
  s.u32(GGUF_VERSION);
  s.u64(file.tensors.length);
  s.u64(file.metadata.length);
  const keys = new Set<string>();
  for (const [key, value] of file.metadata) {
    if (keys.has(key)) throw new Error(`GGUF key ${key} appears twice`);
    keys.add(key);
    writeValue(s, key, value);
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let cursor = 0;
  for (const t of file.tensors) {
    if (names.has(t.name)) throw new Error(`GGUF tensor ${t.name} appears twice`);
    names.add(t.name);
    // GGML_MAX_NAME is 64 bytes including the terminating NUL.
    if (Buffer.byteLength(t.name) >= 64) throw new Error(`GGUF tensor name ${t.name} has 64 bytes or more: ggml's limit is 63`);
    if (t.ne.length < 1 || t.ne.length > 4 || !t.ne.every((d) => Number.isInteger(d) && d > 0)) {
      throw new Error(`GGUF tensor ${t.name}: ne [${t.ne.join(', ')}] must be 1..4 positive integers`);
    }
    s.str(t.name);
    s.u32(t.ne.length);
    for (const d of t.ne) s.u64(d);
    s.u32(GGML_TYPE[t.type]);
    cursor = alignUp(cursor, align);
    s.u64(cursor);
    offsets.push(cursor);
    cursor += ggufTensorBytes(t);
  }
  s.pad(align);
  return { header: s.bytes(), offsets, dataBytes: cursor };
}

function encodeTensorData(t: GgufTensor, values: Float32Array): Uint8Array {
  const count = t.ne.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw new Error(`GGUF tensor ${t.name}: ne [${t.ne.join(', ')}] hold ${count} values, data has ${values.length}`);
  if (t.type === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const half = new Uint16Array(count);
  for (let i = 0; i < count; i++) half[i] = f32ToF16Bits(values[i]!);
  return new Uint8Array(half.buffer);
}

/** Writes `file` to `path` atomically (temp file, fsync, rename). Tensors given as functions are read one by one. */
export async function writeGguf(path: string, file: GgufFile): Promise<{ bytes: number }> {
  const { header, offsets } = encodeGgufHeader(file);
  return writeFileAtomically(path, async (fh) => {
    await writeFully(fh, header, 0);
    let end = header.length;
    for (const [i, t] of file.tensors.entries()) {
      const values = typeof t.data === 'function' ? await t.data() : t.data;
      const pos = header.length + offsets[i]!;
      if (pos > end) await writeFully(fh, Buffer.alloc(pos - end), end);
      const bytes = encodeTensorData(t, values);
      await writeFully(fh, bytes, pos);
      end = pos + bytes.byteLength;
    }
    // Pad the last tensor too: readers that map the file may read a whole aligned block.
    const total = alignUp(end, alignmentOf(file));
    if (total > end) await writeFully(fh, Buffer.alloc(total - end), end);
    return { bytes: total };
  });
}
