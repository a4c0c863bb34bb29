// safetensors reader (header read lazily through a file handle, tensors one at a time) and an atomic F32 writer.
// Not a general tensor library: reads F32/F16/BF16/F64 into Float32Array and writes F32 only.
//
// Hand-written on purpose: the npm safetensors packages are browser-oriented (fetch/ArrayBuffer of the whole file)
// or unmaintained, and the format is small (see shared/docs/REFERENCE.md): u64 LE header length, a JSON header
// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the data, little-endian,
// C order, offsets relative to the end of the header, tensors packed with no holes.
import { endianness } from 'node:os';
import { open, type FileHandle } from 'node:fs/promises';
import { writeFileAtomically, writeFully } from '../util/atomic-file.js';
import { f16BitsToF32 } from '../util/f16.js';

export const DTYPE_BYTES = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
} as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** The safetensors reference implementation refuses headers above 100 MB; so do we (a corrupt length is likely). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offset of the data in the file (8 + header length + data_offsets[0]). */
  fileOffset: number;
  nbytes: number;
}

export interface SafetensorsHeader {
  path: string;
  fileBytes: number;
  headerBytes: number;
  /** Absolute offset where tensor data begins: 8 + headerBytes. */
  dataStart: number;
  metadata: Record<string, string>;
  /** In file order (ascending offset). */
  tensors: Map<string, TensorInfo>;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Reads and validates the header of `path` without reading any tensor data. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r');
  try {
    return await readHeaderFrom(fh, path);
  } finally {
    await fh.close();
  }
}

async function readHeaderFrom(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fileBytes = (await fh.stat()).size;
  if (fileBytes < 8) {
    throw new Error(`${path}: not a safetensors file: ${fileBytes} bytes is shorter than the 8-byte header length field`);
  }
  const lenBuf = Buffer.alloc(8);
  await fh.read(lenBuf, 0, 8, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(fileBytes - 8)) {
    throw new Error(`${path}: header length ${headerLen} runs past the end of the file (${fileBytes} bytes): the file is truncated or not safetensors`);
  }
  const headerBytes = Number(headerLen);
  if (headerBytes > MAX_HEADER_BYTES) {
    throw new Error(`${path}: header length ${headerBytes} exceeds the ${MAX_HEADER_BYTES}-byte limit of the format`);
  }
  if (headerBytes < 2) throw new Error(`${path}: header length ${headerBytes} is too short for a JSON object`);
  const headerBuf = Buffer.alloc(headerBytes);
  await fh.read(headerBuf, 0, headerBytes, 8);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBuf));
  } catch (err) {
    throw new Error(`${path}: header is not valid UTF-8 JSON (${(err as Error).message}); the file is corrupt or not safetensors`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path}: header must be a JSON object`);
  }
  const dataStart = 8 + headerBytes;
  const dataBytes = fileBytes - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { info: TensorInfo; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error(`${path}: __metadata__ must be an object of strings`);
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new Error(`${path}: __metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== 'object' || v === null) throw new Error(`${path}: tensor "${name}": entry must be an object`);
    if (!isDtype(v.dtype)) {
      throw new Error(`${path}: tensor "${name}": unknown dtype ${JSON.stringify(v.dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(v.shape) || !v.shape.every(isCount)) {
      throw new Error(`${path}: tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(v.shape)}`);
    }
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      throw new Error(`${path}: tensor "${name}": data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const shape = v.shape as number[];
    const nbytes = elementCount(shape) * DTYPE_BYTES[v.dtype];
    if (end < begin) throw new Error(`${path}: tensor "${name}": data_offsets [${begin}, ${end}] end before they begin`);
    if (end - begin !== nbytes) {
      throw new Error(`${path}: tensor "${name}": ${v.dtype} ${JSON.stringify(shape)} needs ${nbytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    if (end > dataBytes) {
      throw new Error(`${path}: tensor "${name}": data ends at byte ${dataStart + end} but the file has ${fileBytes} bytes: the file is truncated`);
    }
    entries.push({ info: { name, dtype: v.dtype, shape, fileOffset: dataStart + begin, nbytes }, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const e of entries) {
    if (e.begin < cursor) {
      throw new Error(`${path}: tensor "${e.info.name}" (bytes ${e.begin}..${e.end}) overlaps tensor "${previous}" (ends at ${cursor})`);
    }
    if (e.begin > cursor) {
      throw new Error(`${path}: hole of ${e.begin - cursor} bytes before tensor "${e.info.name}" (data_offsets must be packed)`);
    }
    cursor = e.end;
    previous = e.info.name;
  }
  if (cursor !== dataBytes) {
    throw new Error(`${path}: tensors end at data byte ${cursor} but the file holds ${dataBytes} data bytes: ${dataBytes - cursor} trailing bytes`);
  }
  return { path, fileBytes, headerBytes, dataStart, metadata, tensors: new Map(entries.map((e) => [e.info.name, e.info])) };
}

export function tensorInfo(header: SafetensorsHeader, name: string): TensorInfo {
  const info = header.tensors.get(name);
  if (!info) throw new Error(`${header.path}: has no tensor "${name}"`);
  return info;
}

/**
 * Reads `length` raw bytes of a tensor starting at byte `start` within it. Checks the file still has the size
 * seen when the header was read, so a file replaced underneath gives an error rather than wrong weights.
 */
export async function readTensorBytes(header: SafetensorsHeader, name: string, start = 0, length?: number): Promise<Buffer> {
  const info = tensorInfo(header, name);
  const n = length ?? info.nbytes - start;
  if (start < 0 || n < 0 || start + n > info.nbytes) {
    throw new Error(`${header.path}: tensor "${name}": byte range ${start}..${start + n} is outside its ${info.nbytes} bytes`);
  }
  const fh = await open(header.path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size !== header.fileBytes) {
      throw new Error(`${header.path}: file size changed from ${header.fileBytes} to ${size} bytes since its header was read`);
    }
    const buf = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const { bytesRead } = await fh.read(buf, done, n - done, info.fileOffset + start + done);
      if (bytesRead === 0) throw new Error(`${header.path}: tensor "${name}": unexpected end of file`);
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** Converts raw little-endian bytes of `dtype` to f32 values. */
export function bytesToF32(bytes: Uint8Array, dtype: SafetensorsDtype, where: string): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32': {
      if (endianness() === 'LE') return new Float32Array(new Uint8Array(bytes).buffer); // copy: aligned, owned
      const out = new Float32Array(bytes.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(bytes.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = f16BitsToF32(dv.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      // bf16 is the top half of an f32.
      const out = new Float32Array(bytes.byteLength / 2);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(bytes.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    default:
      throw new Error(`${where}: dtype ${dtype} cannot be read as floating point (supported: F32, F16, BF16, F64)`);
  }
}

/** Reads one whole tensor converted to f32. */
export async function readTensorF32(header: SafetensorsHeader, name: string): Promise<Float32Array> {
  const info = tensorInfo(header, name);
  const bytes = await readTensorBytes(header, name);
  return bytesToF32(bytes, info.dtype, `${header.path}: tensor "${name}"`);
}

export interface F32Tensor {
  dims: number[];
  data: Float32Array;
}

function assertLittleEndianHost(): void {
  // Float32Array views use host byte order; safetensors is little-endian. Every Node target we ship is LE.
  if (endianness() !== 'LE') throw new Error('writing safetensors needs a little-endian host');
}

/** Builds the header bytes (8-byte length + JSON padded with spaces to a multiple of 8, as the reference does). */
export function encodeSafetensorsHeader(
  tensors: ReadonlyArray<readonly [string, F32Tensor]>,
  metadata: Record<string, string> | undefined,
  where: string,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__' || name.length === 0) throw new Error(`${where}: invalid tensor name ${JSON.stringify(name)}`);
    if (Object.prototype.hasOwnProperty.call(header, name)) throw new Error(`${where}: tensor "${name}" appears twice`);
    if (!t.dims.every(isCount)) throw new Error(`${where}: tensor "${name}": dims ${JSON.stringify(t.dims)} must be non-negative integers`);
    const count = elementCount(t.dims);
    if (count !== t.data.length) {
      throw new Error(`${where}: tensor "${name}": dims ${JSON.stringify(t.dims)} hold ${count} values but data has ${t.data.length}`);
    }
    const nbytes = count * 4;
    header[name] = { dtype: 'F32', shape: [...t.dims], data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json);
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const out = Buffer.alloc(8 + Buffer.byteLength(json));
  out.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  out.write(json, 8, 'utf8');
  return out;
}

/**
 * Writes F32 tensors (in the given order) to `path` atomically: temp file + fsync + rename.
 * `metadata` goes into `__metadata__` (PEFT and transformers expect {"format": "pt"}).
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, F32Tensor> | ReadonlyArray<readonly [string, F32Tensor]>,
  metadata?: Record<string, string>,
): Promise<{ bytes: number }> {
  assertLittleEndianHost();
  const list = tensors instanceof Map ? [...tensors.entries()] : tensors;
  const head = encodeSafetensorsHeader(list, metadata, path);
  return writeFileAtomically(path, async (fh) => {
    let pos = 0;
    await writeFully(fh, head, pos);
    pos += head.length;
    for (const [, t] of list) {
      const buf = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      await writeFully(fh, buf, pos);
      pos += buf.length;
    }
    return { bytes: pos };
  });
}
