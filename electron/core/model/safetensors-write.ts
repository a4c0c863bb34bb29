// Streaming safetensors writer for F32, F16 and BF16 (and raw bytes of any dtype): the header is written first from
// the declared dtypes and shapes, then each tensor's bytes as its producer yields them, so a model larger than
// memory can be written one tensor (or one chunk) at a time. The file is replaced atomically. safetensors.ts keeps
// the reader and the in-memory F32 writer; this file only adds what exports of whole models need.
import { endianness } from 'node:os';
import { writeFileAtomically, writeFully } from '../util/atomic-file.js';
import { f32ToF16Bits } from '../util/f16.js';
import { DTYPE_BYTES, elementCount, type SafetensorsDtype } from './safetensors.js';

/** The float formats values can be encoded to. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

export interface StreamedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Yields the tensor's little-endian bytes in order, in chunks of any size; called once, when it is written. */
  bytes: () => AsyncIterable<Uint8Array>;
}

/** bf16 bits of an f32 (round to nearest, ties to even; NaN stays a quiet NaN), as torch converts. */
function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Encodes f32 values as little-endian `dtype` bytes. */
export function encodeFloats(values: Float32Array, dtype: FloatDtype): Uint8Array {
  if (endianness() !== 'LE') throw new Error('writing safetensors needs a little-endian host');
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
  } else {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) out[i] = f32BitsToBf16(bits[i]!);
  }
  return new Uint8Array(out.buffer);
}

/** Header bytes: u64 LE length + JSON padded with spaces to a multiple of 8 (as the reference implementation). */
export function encodeStreamedHeader(tensors: readonly StreamedTensor[], metadata: Record<string, string> | undefined, where: string): { header: Buffer; dataBytes: number } {
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name === '') throw new Error(`${where}: invalid tensor name ${JSON.stringify(t.name)}`);
    if (Object.prototype.hasOwnProperty.call(json, t.name)) throw new Error(`${where}: tensor "${t.name}" appears twice`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`${where}: tensor "${t.name}": shape ${JSON.stringify(t.shape)} must be non-negative integers`);
    const nbytes = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    json[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const header = Buffer.alloc(8 + Buffer.byteLength(text));
  header.writeBigUInt64LE(BigInt(Buffer.byteLength(text)), 0);
  header.write(text, 8, 'utf8');
  return { header, dataBytes: offset };
}

/** Writes `tensors` in order to `path` atomically; a producer yielding more or fewer bytes than declared is an error. */
export async function writeSafetensorsStream(path: string, tensors: readonly StreamedTensor[], metadata?: Record<string, string>): Promise<{ bytes: number }> {
  const { header } = encodeStreamedHeader(tensors, metadata, path);
  return writeFileAtomically(path, async (fh) => {
    await writeFully(fh, header, 0);
    let pos = header.length;
    for (const t of tensors) {
      const expected = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
      let written = 0;
      for await (const chunk of t.bytes()) {
        if (written + chunk.byteLength > expected) throw new Error(`${path}: tensor "${t.name}" produced more than its ${expected} bytes`);
        await writeFully(fh, chunk, pos + written);
        written += chunk.byteLength;
      }
      if (written !== expected) throw new Error(`${path}: tensor "${t.name}" produced ${written} bytes, its ${t.dtype} [${t.shape.join(', ')}] needs ${expected}`);
      pos += written;
    }
    return { bytes: pos };
  });
}
