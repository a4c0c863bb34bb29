// Tensors on the wire (docs/protocol.md "Payload primitives"): the Tensor type, its encoder/decoder, tensor lists,
// and f32 <-> f16 tensor conversion. Not the per-command payloads (messages.ts) and not any maths on tensors.
import { f16ArrayToF32, f32ArrayToF16 } from '../util/f16.js';
import { type ByteReader, type ByteWriter, MAX_TENSOR_NDIM, ProtocolError } from './wire.js';

export type Dtype = 'f32' | 'f16' | 'i32' | 'u8';
/** f16 data are raw IEEE binary16 bit patterns (see f16.ts for conversion). */
export type TensorData = Float32Array | Uint16Array | Int32Array | Uint8Array;

export interface Tensor {
  dtype: Dtype;
  dims: number[]; // C order; [] is a scalar (one element)
  data: TensorData;
}

export interface NamedTensor {
  name: string;
  tensor: Tensor;
}

const DTYPES = {
  f32: { code: 0, bytes: 4, array: Float32Array },
  f16: { code: 1, bytes: 2, array: Uint16Array },
  i32: { code: 2, bytes: 4, array: Int32Array },
  u8: { code: 3, bytes: 1, array: Uint8Array },
} as const;
const DTYPE_BY_CODE: Dtype[] = ['f32', 'f16', 'i32', 'u8'];

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((n, d) => n * d, 1);
}

/** Builds a tensor, checking that the data array matches the dtype and the dims. */
export function makeTensor(dtype: Dtype, dims: number[], data: TensorData): Tensor {
  const t = { dtype, dims, data };
  checkTensor(t, 'tensor');
  return t;
}

function checkTensor(t: Tensor, what: string): void {
  const info = DTYPES[t.dtype];
  if (!info) throw new ProtocolError(`${what}: unknown dtype ${String(t.dtype)} (expected f32, f16, i32 or u8)`);
  if (!(t.data instanceof info.array)) {
    throw new ProtocolError(`${what}: dtype ${t.dtype} needs a ${info.array.name}, got ${t.data.constructor.name}`);
  }
  if (t.dims.length > MAX_TENSOR_NDIM) {
    throw new ProtocolError(`${what}: ${t.dims.length} dims [${t.dims.join(', ')}], at most ${MAX_TENSOR_NDIM}`);
  }
  for (const d of t.dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new ProtocolError(`${what}: dims [${t.dims.join(', ')}] must be u32 integers`);
    }
  }
  const n = elementCount(t.dims);
  if (n !== t.data.length) {
    throw new ProtocolError(`${what}: dims [${t.dims.join(', ')}] hold ${n} elements, data has ${t.data.length}`);
  }
}

export function writeTensor(w: ByteWriter, t: Tensor, what: string): void {
  checkTensor(t, what);
  w.u8(DTYPES[t.dtype].code).u8(t.dims.length).u16(0);
  for (const d of t.dims) w.u32(d);
  w.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
}

export function readTensor(r: ByteReader, what: string): Tensor {
  const code = r.u8(`${what} dtype`);
  const dtype = DTYPE_BY_CODE[code];
  if (dtype === undefined) throw new ProtocolError(`${what}: unknown dtype code ${code} (0 f32, 1 f16, 2 i32, 3 u8)`);
  const ndim = r.u8(`${what} ndim`);
  if (ndim > MAX_TENSOR_NDIM) throw new ProtocolError(`${what}: ndim ${ndim}, at most ${MAX_TENSOR_NDIM}`);
  const reserved = r.u16(`${what} reserved`);
  if (reserved !== 0) throw new ProtocolError(`${what}: reserved field is ${reserved}, must be 0`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(r.u32(`${what} dims[${i}]`));
  const info = DTYPES[dtype];
  // Checked before allocating, so a corrupt shape cannot ask for more memory than the payload holds.
  const dataBytes = elementCount(dims) * info.bytes;
  if (dataBytes > r.remainingBytes) {
    throw new ProtocolError(
      `${what}: ${dtype} [${dims.join(', ')}] needs ${dataBytes} data bytes, the payload has ${r.remainingBytes} left`,
    );
  }
  const raw = r.bytes(dataBytes, `${what} data`);
  const data = new info.array(dataBytes / info.bytes);
  // Copy: the wire offers no alignment, and the tensor must not pin the frame buffer.
  new Uint8Array(data.buffer).set(raw);
  return { dtype, dims, data };
}

export function writeTensorList(w: ByteWriter, list: NamedTensor[], what: string): void {
  w.u32(list.length, `${what} count`);
  for (const [i, nt] of list.entries()) {
    w.string(nt.name, `${what}[${i}] name`);
    writeTensor(w, nt.tensor, `${what}[${i}] ${nt.name}`);
  }
}

export function readTensorList(r: ByteReader, what: string): NamedTensor[] {
  const count = r.u32(`${what} count`);
  const out: NamedTensor[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.string(`${what}[${i}] name`);
    out.push({ name, tensor: readTensor(r, `${what}[${i}] ${name}`) });
  }
  return out;
}

export function writeOptionalTensor(w: ByteWriter, t: Tensor | undefined, flagName: string, what: string): void {
  w.u8(t ? 1 : 0, flagName);
  if (t) writeTensor(w, t, what);
}

/** f32 <-> f16 tensor conversion for activation relay. */
export function tensorToF16(t: Tensor): Tensor {
  if (t.dtype === 'f16') return t;
  if (t.dtype !== 'f32') throw new ProtocolError(`only f32 tensors convert to f16, got ${t.dtype}`);
  return { dtype: 'f16', dims: [...t.dims], data: f32ArrayToF16(t.data as Float32Array) };
}

export function tensorToF32(t: Tensor): Tensor {
  if (t.dtype === 'f32') return t;
  if (t.dtype !== 'f16') throw new ProtocolError(`only f16 tensors convert to f32, got ${t.dtype}`);
  return { dtype: 'f32', dims: [...t.dims], data: f16ArrayToF32(t.data as Uint16Array) };
}
