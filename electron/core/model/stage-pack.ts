// Packs one pipeline stage's frozen weights from a model (a Hugging Face folder or a GGUF file, model-folder.ts
// openModel) into a stage file (docs/stage-format.md v1), streaming tensor by tensor in bounded chunks (whole rows
// for quantised matrices), never holding the whole model in memory: peak memory is about two chunks (chunkBytes,
// 16 MiB by default: the bytes read and their converted copy) plus, for a GGUF source, the rows covering a chunk. Matrices can be stored quantised (int8, q4_0, fp4: quantize.ts, bit-identical to the kernels'
// reference quantiser); the work is CPU-bound, so long packs should run through pack-worker.ts.
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { openModel, readModelTensorBytes, tensorLocation, type ModelFolder, layerTensorShapes } from './model-folder.js';
import type { ModelConfig } from './hf-config.js';
import { bytesToF32, DTYPE_BYTES, type SafetensorsDtype } from './safetensors.js';
import { ropeInvFreq } from './rope.js';
import { writeFileAtomically, writeFully } from '../util/atomic-file.js';
import { f32ToF16Bits } from '../util/f16.js';
import {
  QUANT_GROUP, WeightDType, int8ScalesOffset, isGroupedFormat, isWeightFormat, matrixBytes, quantizeMatrix,
  type WeightFormat, WEIGHT_FORMATS,
} from './quantize.js';

export const STAGE_MAGIC = 'CFDSTAGE';
export const STAGE_FORMAT_VERSION = 1;
export const STAGE_FIXED_HEADER_BYTES = 96;
export const STAGE_ALIGN_BYTES = 64;
export const STAGE_FLAG_HAS_EMBEDDING = 1 << 0;
export const STAGE_FLAG_HAS_HEAD = 1 << 1;
export const STAGE_FLAG_TIED_EMBEDDINGS = 1 << 2;
export const STAGE_FLAG_ATTENTION_BIAS = 1 << 3;
/** The stage holds ROPE_INV_FREQ_TENSOR: the model's RoPE is scaled (rope.ts), not plain theta^(-2i/D). */
export const STAGE_FLAG_ROPE_INV_FREQ = 1 << 4;
/** Header offset 80 holds sliding_window (u32): the agent refuses sequences longer than it. */
export const STAGE_FLAG_SLIDING_WINDOW = 1 << 5;
/** Not a model-folder tensor: computed by ropeInvFreq and written as the stage's first tensor. */
export const ROPE_INV_FREQ_TENSOR = 'rope.inv_freq';
/** Stage dtype codes (docs/stage-format.md), equal to the kernels' WDType (quantize.ts WeightDType). */
export const STAGE_DTYPE_F32 = 0;
export const STAGE_DTYPE_F16 = 1;
export const STAGE_DTYPE_INT8 = 2;
export const STAGE_DTYPE_Q4_0 = 3;
export const STAGE_DTYPE_FP4 = 4;
export type StageDType = 0 | 1 | 2 | 3 | 4;
export type { WeightFormat } from './quantize.js';
export { WEIGHT_FORMATS } from './quantize.js';

/** The tensors that may be stored quantised: 2-D projection matrices, the LM head and the embedding table. */
const QUANTIZABLE = /^(model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight|lm_head\.weight|model\.embed_tokens\.weight)$/;

export function isQuantizableTensor(name: string, dims: readonly number[]): boolean {
  return dims.length === 2 && QUANTIZABLE.test(name);
}

/** Layers [layerStart, layerEnd) plus the embedding (first stage) and/or final norm + LM head (last stage). */
export interface StageSpec {
  layerStart: number;
  layerEnd: number;
  hasEmbedding: boolean;
  hasHead: boolean;
}

export interface PackOptions {
  /**
   * Storage format of the weight matrices (isQuantizableTensor: q/k/v/o/gate/up/down projections, LM head,
   * embedding). Default 'f32'. Norms and biases are never quantised. q4_0 and fp4 quantise groups of 32 columns:
   * a matrix whose column count is not a multiple of 32 is stored as f16 instead, reported in PackResult.fallbacks.
   */
  weightFormat?: WeightFormat;
  /** Keep F16 source tensors as f16 (dtype 1) instead of widening to f32, for every tensor the weight format does
   * not quantise (with the default weightFormat 'f32': all of them). Default false: the agent's reference engine
   * computes in f32. BF16 and F64 sources are always widened/narrowed to f32. */
  keepF16?: boolean;
  /** Upper bound on bytes read per chunk while streaming a tensor (default 16 MiB; at least one row is read). */
  chunkBytes?: number;
  /** Called after every chunk written. */
  onProgress?: (p: PackProgress) => void;
  /** Aborts the pack between chunks (the partial file is removed; the promise rejects with the abort reason). */
  signal?: AbortSignal;
}

export interface PackProgress {
  /** Tensor being written and its index in the file. */
  tensor: string;
  tensorIndex: number;
  tensorCount: number;
  /** Bytes of tensor data written so far, and the stage's total tensor data bytes. */
  bytesDone: number;
  bytesTotal: number;
}

export interface StageTensorEntry {
  /** Name stored in the stage file. */
  name: string;
  /** Tensor read from the model folder (differs from name only for a tied LM head resolved elsewhere). */
  sourceName: string;
  dims: number[];
  dtype: StageDType;
  /** dtype by name: 'f32', 'f16', 'int8', 'q4_0' or 'fp4'. */
  format: WeightFormat;
  /** Set when the requested weightFormat could not be used for this matrix (it is stored as `format`). */
  fallback?: string;
  sourceDtype: SafetensorsDtype;
  /** Absolute file offset of the data (multiple of 64). */
  offset: number;
  nbytes: number;
}

export interface StageLayout {
  flags: number;
  tableBytes: number;
  dataOffset: number;
  fileBytes: number;
  tensors: StageTensorEntry[];
}

/** One stored tensor, for reports: what it was stored as and why, when not the requested format. */
export interface PackedTensor {
  name: string;
  dims: number[];
  format: WeightFormat;
  nbytes: number;
  fallback?: string;
}

export interface PackResult {
  bytes: number;
  sha256: string;
  tensorCount: number;
  /** The requested weight format. */
  weightFormat: WeightFormat;
  /** Every tensor in file order with the format it was stored in. */
  tensors: PackedTensor[];
  /** The matrices that could not take the requested format (e.g. q4_0 with 172 columns -> f16), with the reason. */
  fallbacks: { name: string; dims: number[]; requested: WeightFormat; stored: WeightFormat; reason: string }[];
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function checkSpec(c: ModelConfig, s: StageSpec, where: string): void {
  if (!Number.isInteger(s.layerStart) || !Number.isInteger(s.layerEnd) || s.layerStart < 0 || s.layerEnd > c.numLayers || s.layerStart >= s.layerEnd) {
    throw new Error(`${where}: stage layers [${s.layerStart}, ${s.layerEnd}) must be a non-empty range inside [0, ${c.numLayers})`);
  }
  if (s.hasEmbedding && s.layerStart !== 0) {
    throw new Error(`${where}: only the first stage (layerStart 0) can hold the embedding; this one starts at layer ${s.layerStart}`);
  }
  if (s.hasHead && s.layerEnd !== c.numLayers) {
    throw new Error(`${where}: only the last stage (layerEnd ${c.numLayers}) can hold the LM head; this one ends at layer ${s.layerEnd}`);
  }
}

/** Names and shapes of the tensors a stage holds, in file order. */
export function stageTensorNames(c: ModelConfig, s: StageSpec): { name: string; dims: number[] }[] {
  const out: { name: string; dims: number[] }[] = [];
  // Plain RoPE is recomputed from rope_theta by the agent, so such files stay as they were (and older agents read
  // them); a scaled one ships its table, which older agents refuse through the unknown flag bit.
  if (c.ropeScaling !== null) out.push({ name: ROPE_INV_FREQ_TENSOR, dims: [c.headDim / 2] });
  const embed = 'model.embed_tokens.weight';
  if (s.hasEmbedding) out.push({ name: embed, dims: [c.vocabSize, c.hiddenSize] });
  for (let i = s.layerStart; i < s.layerEnd; i++) {
    for (const [name, dims] of layerTensorShapes(c, i)) out.push({ name, dims });
  }
  if (s.hasHead) {
    out.push({ name: 'model.norm.weight', dims: [c.hiddenSize] });
    // Tied: the head is the embedding; a stage that is both first and last stores it once.
    if (!c.tieWordEmbeddings) out.push({ name: 'lm_head.weight', dims: [c.vocabSize, c.hiddenSize] });
    else if (!s.hasEmbedding) out.push({ name: embed, dims: [c.vocabSize, c.hiddenSize] });
  }
  return out;
}

function entryBytes(name: string, ndim: number): number {
  return 2 + Buffer.byteLength(name) + 1 + 1 + 8 * ndim + 8 + 8 + 4;
}

/** The format a tensor is stored in for these options, and the reason when it is not the requested one. */
export function chooseTensorFormat(name: string, dims: readonly number[], sourceDtype: SafetensorsDtype, opts: PackOptions = {}): { format: WeightFormat; fallback?: string } {
  const requested = opts.weightFormat ?? 'f32';
  const plain: WeightFormat = sourceDtype === 'F16' && opts.keepF16 ? 'f16' : 'f32';
  if (requested === 'f32' || !isQuantizableTensor(name, dims)) return { format: plain };
  const cols = dims[1]!;
  if (isGroupedFormat(requested) && cols % QUANT_GROUP !== 0) {
    return {
      format: 'f16',
      fallback: `${requested} needs a column count that is a multiple of ${QUANT_GROUP}; [${dims.join(', ')}] has ${cols} columns: stored as f16`,
    };
  }
  return { format: requested };
}

/** Computes offsets and sizes without reading any tensor data (also usable to predict a stage's file size). */
export function planStageLayout(folder: ModelFolder, spec: StageSpec, opts: PackOptions = {}): StageLayout {
  const c = folder.config;
  checkSpec(c, spec, folder.dir);
  const weightFormat = opts.weightFormat ?? 'f32';
  if (!isWeightFormat(weightFormat)) {
    throw new Error(`unknown weight format ${JSON.stringify(weightFormat)} (one of ${WEIGHT_FORMATS.join(', ')})`);
  }
  const list = stageTensorNames(c, spec);
  const tableBytes = list.reduce((sum, t) => sum + entryBytes(t.name, t.dims.length), 0);
  const dataOffset = alignUp(STAGE_FIXED_HEADER_BYTES + tableBytes, STAGE_ALIGN_BYTES);
  let cursor = dataOffset;
  const tensors: StageTensorEntry[] = [];
  for (const t of list) {
    if (t.name === ROPE_INV_FREQ_TENSOR) {
      const offset = alignUp(cursor, STAGE_ALIGN_BYTES);
      tensors.push({ name: t.name, sourceName: t.name, dims: t.dims, dtype: STAGE_DTYPE_F32, format: 'f32', sourceDtype: 'F32', offset, nbytes: 4 * t.dims[0]! });
      cursor = offset + 4 * t.dims[0]!;
      continue;
    }
    const loc = tensorLocation(folder, t.name);
    const where = `${loc.header.path}: tensor "${loc.info.name}"`;
    if (loc.info.shape.join(',') !== t.dims.join(',')) {
      throw new Error(`${where} has shape [${loc.info.shape.join(', ')}], stage needs [${t.dims.join(', ')}]`);
    }
    if (t.dims.length < 1 || t.dims.length > 4) throw new Error(`${where} has ${t.dims.length} dims; stage files allow 1..4`);
    const src = loc.info.dtype;
    if (!['F32', 'F16', 'BF16', 'F64'].includes(src)) {
      throw new Error(`${where} is ${src}; stage files are packed from F32, F16, BF16 or F64 weights (quantised safetensors checkpoints are not supported)`);
    }
    const { format, fallback } = chooseTensorFormat(t.name, t.dims, src, opts);
    const dtype = WeightDType[format] as StageDType;
    const nbytes = format === 'f32' || format === 'f16'
      ? t.dims.reduce((a, b) => a * b, 1) * (format === 'f32' ? 4 : 2)
      : matrixBytes(format, t.dims[0]!, t.dims[1]!);
    const offset = alignUp(cursor, STAGE_ALIGN_BYTES);
    const entry: StageTensorEntry = { name: t.name, sourceName: loc.name, dims: t.dims, dtype, format, sourceDtype: src, offset, nbytes };
    if (fallback !== undefined) entry.fallback = fallback;
    tensors.push(entry);
    cursor = offset + nbytes;
  }
  let flags = 0;
  if (spec.hasEmbedding) flags |= STAGE_FLAG_HAS_EMBEDDING;
  if (spec.hasHead) flags |= STAGE_FLAG_HAS_HEAD;
  if (c.tieWordEmbeddings) flags |= STAGE_FLAG_TIED_EMBEDDINGS;
  if (c.attentionBias) flags |= STAGE_FLAG_ATTENTION_BIAS;
  if (c.ropeScaling !== null) flags |= STAGE_FLAG_ROPE_INV_FREQ;
  if (c.slidingWindow !== null) flags |= STAGE_FLAG_SLIDING_WINDOW;
  return { flags, tableBytes, dataOffset, fileBytes: cursor, tensors };
}

/** Header + tensor table + zero padding up to dataOffset; a missing CRC is written as 0 (patched later). */
function encodeStageHeader(c: ModelConfig, spec: StageSpec, layout: StageLayout, crcs: number[]): Buffer {
  const buf = Buffer.alloc(layout.dataOffset);
  buf.write(STAGE_MAGIC, 0, 'ascii');
  buf.writeUInt32LE(STAGE_FORMAT_VERSION, 8);
  buf.writeUInt32LE(layout.tensors.length, 12);
  buf.writeUInt32LE(c.hiddenSize, 16);
  buf.writeUInt32LE(c.intermediateSize, 20);
  buf.writeUInt32LE(c.numLayers, 24);
  buf.writeUInt32LE(c.numHeads, 28);
  buf.writeUInt32LE(c.numKvHeads, 32);
  buf.writeUInt32LE(c.headDim, 36);
  buf.writeUInt32LE(c.vocabSize, 40);
  buf.writeFloatLE(c.rmsNormEps, 44);
  buf.writeFloatLE(c.ropeTheta, 48);
  buf.writeUInt32LE(spec.layerStart, 52);
  buf.writeUInt32LE(spec.layerEnd, 56);
  buf.writeUInt32LE(layout.flags, 60);
  buf.writeBigUInt64LE(BigInt(layout.dataOffset), 64);
  buf.writeBigUInt64LE(BigInt(layout.fileBytes), 72);
  // sliding_window (flag bit 5), then 84..95 reserved, already zero.
  if (c.slidingWindow !== null) buf.writeUInt32LE(c.slidingWindow, 80);
  let p = STAGE_FIXED_HEADER_BYTES;
  layout.tensors.forEach((t, i) => {
    const nameLen = Buffer.byteLength(t.name);
    if (nameLen > 0xffff) throw new Error(`tensor name too long for a stage file: ${t.name}`);
    buf.writeUInt16LE(nameLen, p);
    p += 2;
    p += buf.write(t.name, p, 'utf8');
    buf.writeUInt8(t.dtype, p++);
    buf.writeUInt8(t.dims.length, p++);
    for (const d of t.dims) {
      buf.writeBigUInt64LE(BigInt(d), p);
      p += 8;
    }
    buf.writeBigUInt64LE(BigInt(t.offset), p);
    p += 8;
    buf.writeBigUInt64LE(BigInt(t.nbytes), p);
    p += 8;
    buf.writeUInt32LE(crcs[i] ?? 0, p);
    p += 4;
  });
  return buf;
}

/** f32 values -> little-endian f16 bytes. */
function f32ToF16Bytes(f32: Float32Array): Uint8Array {
  const out = new Uint8Array(f32.length * 2);
  for (let i = 0; i < f32.length; i++) {
    const h = f32ToF16Bits(f32[i]!);
    out[2 * i] = h & 0xff;
    out[2 * i + 1] = h >>> 8;
  }
  return out;
}

function f32Bytes(f32: Float32Array): Uint8Array {
  return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
}

function assertFinite(f32: Float32Array, cols: number, firstRow: number, where: string): void {
  for (let i = 0; i < f32.length; i++) {
    if (!Number.isFinite(f32[i]!)) {
      throw new Error(`${where}: value ${f32[i]} at row ${firstRow + Math.floor(i / cols)}, column ${i % cols} is not finite; refusing to quantise a broken checkpoint`);
    }
  }
}

/**
 * Writes the stage file for `spec` to `outPath` atomically (temp file, fsync, rename). `folder` is a path
 * openModel takes (a Hugging Face folder or a .gguf file) or an already opened model. Returns the file size, its sha256 (computed by reading
 * the written file back, which also checks that it is exactly `file_bytes` long) and the format of every tensor.
 * CPU-bound for quantised formats: see packStageInWorker (pack-worker.ts) to keep an event loop responsive.
 */
export async function packStage(folder: string | ModelFolder, spec: StageSpec, outPath: string, opts: PackOptions = {}): Promise<PackResult> {
  const model = typeof folder === 'string' ? await openModel(folder) : folder;
  const layout = planStageLayout(model, spec, opts);
  const chunkBytes = Math.max(4096, opts.chunkBytes ?? 16 * 1024 * 1024);
  const bytesTotal = layout.tensors.reduce((a, t) => a + t.nbytes, 0);
  let bytesDone = 0;
  opts.signal?.throwIfAborted();
  return writeFileAtomically(outPath, async (fh, tempPath) => {
    const crcs: number[] = [];
    await writeFully(fh, encodeStageHeader(model.config, spec, layout, crcs), 0);
    let cursor = layout.dataOffset;
    for (const [index, t] of layout.tensors.entries()) {
      if (t.offset > cursor) await writeFully(fh, Buffer.alloc(t.offset - cursor), cursor);
      let crc = 0;
      let out = t.offset;
      const emit = async (bytes: Uint8Array): Promise<void> => {
        opts.signal?.throwIfAborted();
        crc = crc32(bytes, crc);
        await writeFully(fh, bytes, out);
        out += bytes.byteLength;
        bytesDone += bytes.byteLength;
        opts.onProgress?.({ tensor: t.name, tensorIndex: index, tensorCount: layout.tensors.length, bytesDone, bytesTotal });
      };
      if (t.name === ROPE_INV_FREQ_TENSOR) {
        await emit(f32Bytes(ropeInvFreq(model.config)));
        crcs.push(crc);
        cursor = out;
        continue;
      }
      const loc = tensorLocation(model, t.sourceName);
      const where = `${loc.header.path}: tensor "${loc.info.name}"`;
      const inElemBytes = DTYPE_BYTES[t.sourceDtype];
      if (t.format === 'f32' || t.format === 'f16') {
        // Element chunks: raw copy when the dtype already matches, else convert.
        const count = t.dims.reduce((a, b) => a * b, 1);
        const chunkElems = Math.max(1, Math.floor(chunkBytes / Math.max(inElemBytes, 4)));
        const sameDtype = (t.sourceDtype === 'F32' && t.format === 'f32') || (t.sourceDtype === 'F16' && t.format === 'f16');
        for (let e = 0; e < count; e += chunkElems) {
          const n = Math.min(chunkElems, count - e);
          const raw = await readModelTensorBytes(model, t.sourceName, e * inElemBytes, n * inElemBytes);
          if (sameDtype) await emit(raw);
          else {
            const f32 = bytesToF32(raw, t.sourceDtype, where);
            await emit(t.format === 'f32' ? f32Bytes(f32) : f32ToF16Bytes(f32));
          }
        }
      } else {
        // Quantised matrix: whole rows per chunk (groups and int8 row scales never straddle a chunk).
        const [rows, cols] = t.dims as [number, number];
        const chunkRows = Math.max(1, Math.floor(chunkBytes / (cols * Math.max(inElemBytes, 4))));
        const scales: Uint8Array[] = [];
        for (let r = 0; r < rows; r += chunkRows) {
          const n = Math.min(chunkRows, rows - r);
          const raw = await readModelTensorBytes(model, t.sourceName, r * cols * inElemBytes, n * cols * inElemBytes);
          const f32 = bytesToF32(raw, t.sourceDtype, where);
          assertFinite(f32, cols, r, where);
          const q = quantizeMatrix(t.format, f32, n, cols);
          if (t.format === 'int8') {
            // Codes now; the per-row scale plane follows all codes (after padding to 4 bytes).
            scales.push(q.slice(int8ScalesOffset(n, cols)));
            await emit(q.subarray(0, n * cols));
          } else {
            await emit(q);
          }
        }
        if (t.format === 'int8') {
          const pad = int8ScalesOffset(rows, cols) - rows * cols;
          if (pad > 0) await emit(new Uint8Array(pad));
          await emit(Buffer.concat(scales));
        }
      }
      if (out - t.offset !== t.nbytes) throw new Error(`${where}: wrote ${out - t.offset} bytes, the stage table says ${t.nbytes}`);
      crcs.push(crc);
      cursor = out;
    }
    // The CRCs are known only now: rewrite the header with them.
    await writeFully(fh, encodeStageHeader(model.config, spec, layout, crcs), 0);
    await fh.sync();
    const hash = createHash('sha256');
    const buf = Buffer.alloc(Math.min(chunkBytes, 4 * 1024 * 1024));
    let pos = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    if (pos !== layout.fileBytes) throw new Error(`${tempPath}: wrote ${pos} bytes, expected file_bytes ${layout.fileBytes}`);
    const weightFormat = opts.weightFormat ?? 'f32';
    const tensors: PackedTensor[] = layout.tensors.map((t) => {
      const p: PackedTensor = { name: t.name, dims: t.dims, format: t.format, nbytes: t.nbytes };
      if (t.fallback !== undefined) p.fallback = t.fallback;
      return p;
    });
    const fallbacks = layout.tensors
      .filter((t) => t.fallback !== undefined)
      .map((t) => ({ name: t.name, dims: t.dims, requested: weightFormat, stored: t.format, reason: t.fallback! }));
    return { bytes: pos, sha256: hash.digest('hex'), tensorCount: layout.tensors.length, weightFormat, tensors, fallbacks };
  });
}
