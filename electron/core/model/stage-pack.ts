// Packs one pipeline stage's frozen weights from a Hugging Face folder into a stage file (docs/stage-format.md v1),
// streaming tensor by tensor in bounded chunks. It does not quantise and never holds the whole model in memory.
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { openModelFolder, tensorLocation, type ModelFolder, layerTensorShapes } from './model-folder.js';
import type { ModelConfig } from './hf-config.js';
import { bytesToF32, readTensorBytes, DTYPE_BYTES, type SafetensorsDtype } from './safetensors.js';
import { writeFileAtomically, writeFully } from '../util/atomic-file.js';

export const STAGE_MAGIC = 'CFDSTAGE';
export const STAGE_FORMAT_VERSION = 1;
export const STAGE_FIXED_HEADER_BYTES = 96;
export const STAGE_ALIGN_BYTES = 64;
export const STAGE_FLAG_HAS_EMBEDDING = 1 << 0;
export const STAGE_FLAG_HAS_HEAD = 1 << 1;
export const STAGE_FLAG_TIED_EMBEDDINGS = 1 << 2;
export const STAGE_FLAG_ATTENTION_BIAS = 1 << 3;
/** Stage dtype codes (docs/stage-format.md). */
export const STAGE_DTYPE_F32 = 0;
export const STAGE_DTYPE_F16 = 1;
const STAGE_DTYPE_BYTES = [4, 2] as const;

/** Layers [layerStart, layerEnd) plus the embedding (first stage) and/or final norm + LM head (last stage). */
export interface StageSpec {
  layerStart: number;
  layerEnd: number;
  hasEmbedding: boolean;
  hasHead: boolean;
}

export interface PackOptions {
  /** Keep F16 source tensors as f16 (dtype 1) instead of widening to f32. Default false: the agent's
   * reference engine computes in f32. BF16 and F64 sources are always widened/narrowed to f32. */
  keepF16?: boolean;
  /** Upper bound on bytes read per chunk while streaming a tensor (default 16 MiB). */
  chunkBytes?: number;
}

export interface StageTensorEntry {
  /** Name stored in the stage file. */
  name: string;
  /** Tensor read from the model folder (differs from name only for a tied LM head resolved elsewhere). */
  sourceName: string;
  dims: number[];
  dtype: typeof STAGE_DTYPE_F32 | typeof STAGE_DTYPE_F16;
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

export interface PackResult {
  bytes: number;
  sha256: string;
  tensorCount: number;
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

/** Computes offsets and sizes without reading any tensor data (also usable to predict a stage's file size). */
export function planStageLayout(folder: ModelFolder, spec: StageSpec, opts: PackOptions = {}): StageLayout {
  const c = folder.config;
  checkSpec(c, spec, folder.dir);
  const list = stageTensorNames(c, spec);
  const tableBytes = list.reduce((sum, t) => sum + entryBytes(t.name, t.dims.length), 0);
  const dataOffset = alignUp(STAGE_FIXED_HEADER_BYTES + tableBytes, STAGE_ALIGN_BYTES);
  let cursor = dataOffset;
  const tensors: StageTensorEntry[] = [];
  for (const t of list) {
    const loc = tensorLocation(folder, t.name);
    if (loc.info.shape.join(',') !== t.dims.join(',')) {
      throw new Error(`${loc.header.path}: tensor "${loc.name}" has shape [${loc.info.shape.join(', ')}], stage needs [${t.dims.join(', ')}]`);
    }
    if (t.dims.length < 1 || t.dims.length > 4) throw new Error(`${loc.header.path}: tensor "${loc.name}" has ${t.dims.length} dims; stage files allow 1..4`);
    const src = loc.info.dtype;
    if (!['F32', 'F16', 'BF16', 'F64'].includes(src)) {
      throw new Error(`${loc.header.path}: tensor "${loc.name}" is ${src}; stage files are packed from F32, F16, BF16 or F64 weights (quantised checkpoints are not supported yet)`);
    }
    const dtype = src === 'F16' && opts.keepF16 ? STAGE_DTYPE_F16 : STAGE_DTYPE_F32;
    const nbytes = t.dims.reduce((a, b) => a * b, 1) * STAGE_DTYPE_BYTES[dtype];
    const offset = alignUp(cursor, STAGE_ALIGN_BYTES);
    tensors.push({ name: t.name, sourceName: loc.name, dims: t.dims, dtype, sourceDtype: src, offset, nbytes });
    cursor = offset + nbytes;
  }
  let flags = 0;
  if (spec.hasEmbedding) flags |= STAGE_FLAG_HAS_EMBEDDING;
  if (spec.hasHead) flags |= STAGE_FLAG_HAS_HEAD;
  if (c.tieWordEmbeddings) flags |= STAGE_FLAG_TIED_EMBEDDINGS;
  if (c.attentionBias) flags |= STAGE_FLAG_ATTENTION_BIAS;
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
  // 80..95 reserved, already zero.
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

/**
 * Writes the stage file for `spec` to `outPath` atomically (temp file, fsync, rename). `folder` is a path to a
 * Hugging Face model folder or an already opened one. Returns the file size and its sha256 (computed by reading
 * the written file back, which also checks that it is exactly `file_bytes` long).
 */
export async function packStage(folder: string | ModelFolder, spec: StageSpec, outPath: string, opts: PackOptions = {}): Promise<PackResult> {
  const model = typeof folder === 'string' ? await openModelFolder(folder) : folder;
  const layout = planStageLayout(model, spec, opts);
  const chunkBytes = Math.max(4096, opts.chunkBytes ?? 16 * 1024 * 1024);
  return writeFileAtomically(outPath, async (fh, tempPath) => {
    const crcs: number[] = [];
    await writeFully(fh, encodeStageHeader(model.config, spec, layout, crcs), 0);
    let cursor = layout.dataOffset;
    for (const t of layout.tensors) {
      if (t.offset > cursor) await writeFully(fh, Buffer.alloc(t.offset - cursor), cursor);
      const loc = tensorLocation(model, t.sourceName);
      const inElemBytes = DTYPE_BYTES[t.sourceDtype];
      const count = t.nbytes / STAGE_DTYPE_BYTES[t.dtype];
      const chunkElems = Math.max(1, Math.floor(chunkBytes / Math.max(inElemBytes, 4)));
      let crc = 0;
      let out = t.offset;
      for (let e = 0; e < count; e += chunkElems) {
        const n = Math.min(chunkElems, count - e);
        const raw = await readTensorBytes(loc.header, loc.name, e * inElemBytes, n * inElemBytes);
        const sameDtype = (t.sourceDtype === 'F32' && t.dtype === STAGE_DTYPE_F32) || (t.sourceDtype === 'F16' && t.dtype === STAGE_DTYPE_F16);
        let bytes: Uint8Array;
        if (sameDtype) bytes = raw;
        else {
          const f32 = bytesToF32(raw, t.sourceDtype, `${loc.header.path}: tensor "${loc.name}"`);
          bytes = new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
        }
        crc = crc32(bytes, crc);
        await writeFully(fh, bytes, out);
        out += bytes.byteLength;
      }
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
    return { bytes: pos, sha256: hash.digest('hex'), tensorCount: layout.tensors.length };
  });
}
