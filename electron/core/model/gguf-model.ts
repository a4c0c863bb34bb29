// A GGUF model file seen as a Hugging Face Llama-family model: the ModelConfig from the "<arch>.*" metadata, and
// every tensor under its HF name, in HF layout ([out, in] rows), q/k rows put back from llama.cpp's interleaved
// RoPE order to HF rotate-half (the inverse of gguf-llama.ts permuteRopeRows), dequantised (Q8_0, Q4_0) to f32.
// Tensors are read lazily, rows at a time. Not the GGUF parser (gguf-read.ts) and not the tokenizer (gguf-tokenizer.ts).
import { basename } from 'node:path';
import type { ModelConfig, ModelType } from './hf-config.js';
import { readGgufHeader, readGgufRows, DEQUANTISED_TYPES, type GgufFile, type GgufMetaValue, type GgufTensorInfo } from './gguf-read.js';
import type { SafetensorsDtype, SafetensorsHeader, TensorInfo } from './safetensors.js';
import type { RopeScaling } from './rope.js';
import { f32ToF16Bits } from '../util/f16.js';

/** general.architecture values read, and the model_type each maps to. */
export const SUPPORTED_GGUF_ARCHS: Record<string, ModelType> = { llama: 'llama', qwen2: 'qwen2' };
const ARCHS_TEXT = 'llama (Llama 2/3, Mistral, SmolLM, TinyLlama), qwen2 (Qwen2/2.5)';

/** llama.cpp tensor names of one layer -> HF suffixes (convert_hf_to_gguf.py's tensor map for these archs). */
const LAYER_NAMES: Record<string, string> = {
  attn_norm: 'input_layernorm', attn_q: 'self_attn.q_proj', attn_k: 'self_attn.k_proj', attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj', ffn_norm: 'post_attention_layernorm', ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj',
};
const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight', 'output_norm.weight': 'model.norm.weight', 'output.weight': 'lm_head.weight',
};
/** llama.cpp's per-pair RoPE frequency divisors (Llama 3 rope_scaling): part of the config, not a weight. */
const ROPE_FREQS = 'rope_freqs.weight';

/** The HF name of a GGUF tensor, or null for names this mapping does not know (ignored, as HF ignores extras). */
export function hfTensorName(ggufName: string): string | null {
  const global = GLOBAL_NAMES[ggufName];
  if (global) return global;
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(ggufName);
  const part = m ? LAYER_NAMES[m[2]!] : undefined;
  return part ? `model.layers.${m![1]}.${part}.${m![3]}` : null;
}

/** The GGUF tensor presented under an HF name: which rows to read, whether to undo the RoPE permutation. */
export interface GgufTensorView {
  gguf: GgufTensorInfo;
  /** HF shape (ggml ne reversed). */
  shape: number[];
  /** Element type readModelTensorBytes returns: F16/BF16 as stored, everything else (F32, Q8_0, Q4_0) as F32. */
  dtype: SafetensorsDtype;
  /** q/k of an interleaved-RoPE arch: heads of headDim rows to put back into rotate-half order. */
  ropeHeads: { heads: number; headDim: number } | null;
}

function meta(file: GgufFile, key: string): GgufMetaValue | undefined {
  return file.metadata.get(key);
}

function metaInt(file: GgufFile, key: string, fallback?: number): number {
  const v = meta(file, key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`${file.path}: GGUF metadata "${key}" is missing`);
  }
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0) throw new Error(`${file.path}: GGUF metadata "${key}" must be a positive integer, got ${String(v)}`);
  return n;
}

function metaNum(file: GgufFile, key: string, fallback: number): number {
  const v = meta(file, key);
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new Error(`${file.path}: GGUF metadata "${key}" must be a positive number, got ${String(v)}`);
  return v;
}

function optionalId(file: GgufFile, key: string): number | null {
  const v = meta(file, key);
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null;
}

/** A GGUF tensor's HF shape: ggml ne is innermost-first. */
function hfShape(t: GgufTensorInfo): number[] {
  return [...t.ne].reverse();
}

/**
 * RoPE scaling from the metadata: "<arch>.rope.scaling.type" linear (with .factor), or llama.cpp's rope_freqs.weight
 * divisors (written for Llama 3's rope_scaling); yarn and others are refused as the HF loader refuses them.
 */
async function ggufRopeScaling(file: GgufFile, arch: string, headDim: number): Promise<RopeScaling | null> {
  const type = meta(file, `${arch}.rope.scaling.type`);
  const freqs = file.tensors.get(ROPE_FREQS);
  if (freqs) {
    if (freqs.ne.length !== 1 || freqs.ne[0] !== headDim / 2) {
      throw new Error(`${file.path}: tensor "${ROPE_FREQS}" has ne [${freqs.ne.join(', ')}], expected [${headDim / 2}] (head_dim / 2)`);
    }
    const divisors = Array.from(await readGgufRows(file, ROPE_FREQS, [0]));
    if (!divisors.every((d) => d > 0 && Number.isFinite(d))) throw new Error(`${file.path}: tensor "${ROPE_FREQS}" holds a divisor that is not positive and finite`);
    return { type: 'divisors', divisors };
  }
  if (type === undefined || type === 'none') return null;
  if (type === 'linear') return { type: 'linear', factor: metaNum(file, `${arch}.rope.scaling.factor`, 1) };
  throw new Error(`${file.path}: ${arch}.rope.scaling.type ${JSON.stringify(type)} is not supported; supported: none, linear, and Llama 3 frequency factors (rope_freqs.weight)`);
}

/** The ModelConfig a GGUF file describes (what config.json would say for the same model). */
export async function ggufModelConfig(file: GgufFile): Promise<ModelConfig> {
  const arch = meta(file, 'general.architecture');
  const modelType = typeof arch === 'string' ? SUPPORTED_GGUF_ARCHS[arch] : undefined;
  if (typeof arch !== 'string' || modelType === undefined) {
    throw new Error(`${file.path}: GGUF architecture ${JSON.stringify(arch ?? null)} is not supported; supported: ${ARCHS_TEXT}`);
  }
  const A = `${arch}.`;
  const hiddenSize = metaInt(file, `${A}embedding_length`);
  const numHeads = metaInt(file, `${A}attention.head_count`);
  const numKvHeads = metaInt(file, `${A}attention.head_count_kv`, numHeads);
  const headDim = metaInt(file, `${A}attention.key_length`, hiddenSize / numHeads);
  const ropeDims = metaInt(file, `${A}rope.dimension_count`, headDim);
  if (ropeDims !== headDim) throw new Error(`${file.path}: ${A}rope.dimension_count ${ropeDims} differs from head_dim ${headDim}: partial rotary embeddings are not supported`);
  if (numHeads % numKvHeads !== 0) throw new Error(`${file.path}: ${numHeads} attention heads are not a multiple of ${numKvHeads} kv heads`);
  const embd = file.tensors.get('token_embd.weight');
  const tokens = meta(file, 'tokenizer.ggml.tokens');
  const vocabFallback = embd?.ne[1] ?? (Array.isArray(tokens) ? tokens.length : undefined);
  const eos = optionalId(file, 'tokenizer.ggml.eos_token_id');
  const maxPos = meta(file, `${A}context_length`);
  return {
    modelType,
    hiddenSize,
    intermediateSize: metaInt(file, `${A}feed_forward_length`),
    numLayers: metaInt(file, `${A}block_count`),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: metaInt(file, `${A}vocab_size`, vocabFallback),
    rmsNormEps: metaNum(file, `${A}attention.layer_norm_rms_epsilon`, 1e-6),
    ropeTheta: metaNum(file, `${A}rope.freq_base`, 10000),
    ropeScaling: await ggufRopeScaling(file, arch, headDim),
    // GGUF keeps no sliding window (llama.cpp runs Mistral with full attention too).
    slidingWindow: null,
    // convert_hf_to_gguf.py writes no output.weight for tied embeddings.
    tieWordEmbeddings: !file.tensors.has('output.weight'),
    attentionBias: file.tensors.has('blk.0.attn_q.bias'),
    bosTokenId: optionalId(file, 'tokenizer.ggml.bos_token_id'),
    eosTokenIds: eos === null ? [] : [eos],
    maxPositionEmbeddings: typeof maxPos === 'number' ? maxPos : null,
  };
}

/** Every mapped tensor under its HF name, and the GGUF file seen as the `header` callers of TensorLocation expect. */
export function ggufTensorViews(file: GgufFile, c: ModelConfig): Map<string, GgufTensorView> {
  const views = new Map<string, GgufTensorView>();
  // llama.cpp's "llama" arch rotates interleaved pairs, so its converter permuted q/k rows; "qwen2" (NEOX-style
  // rotation) keeps HF's order.
  const interleaved = c.modelType === 'llama';
  for (const t of file.tensors.values()) {
    const name = hfTensorName(t.name);
    if (name === null) continue;
    const q = /\.q_proj\./.test(name);
    const k = /\.k_proj\./.test(name);
    const heads = q ? c.numHeads : c.numKvHeads;
    views.set(name, {
      gguf: t,
      shape: hfShape(t),
      dtype: t.type === 'F16' ? 'F16' : t.type === 'BF16' ? 'BF16' : 'F32',
      ropeHeads: interleaved && (q || k) ? { heads, headDim: c.headDim } : null,
    });
  }
  return views;
}

/** The safetensors-shaped view of the file (path, sizes) that TensorLocation carries for error messages. */
export function ggufHeaderView(file: GgufFile, views: Map<string, GgufTensorView>): SafetensorsHeader {
  const tensors = new Map<string, TensorInfo>();
  for (const [name, v] of views) tensors.set(name, ggufTensorInfo(v));
  return { path: file.path, fileBytes: file.fileBytes, headerBytes: file.dataStart - 8, dataStart: file.dataStart, metadata: {}, tensors };
}

/** TensorInfo of a view: HF shape, the dtype and byte count readGgufTensorBytes returns, the GGUF name. */
export function ggufTensorInfo(v: GgufTensorView): TensorInfo {
  const count = v.shape.reduce((a, b) => a * b, 1);
  return { name: v.gguf.name, dtype: v.dtype, shape: v.shape, fileOffset: v.gguf.fileOffset, nbytes: count * (v.dtype === 'F32' ? 4 : 2) };
}

/** GGUF row holding HF row `r` of a q/k projection: HF row h*D + s*D/2 + i is GGUF row h*D + 2i + s. */
function ggufRowOf(r: number, headDim: number): number {
  const half = headDim / 2;
  const h = Math.floor(r / headDim);
  const within = r % headDim;
  const s = within >= half ? 1 : 0;
  return h * headDim + 2 * (within - s * half) + s;
}

function encode(values: Float32Array, dtype: SafetensorsDtype): Buffer {
  if (dtype === 'F32') return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.length * 2);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  // Both are exact round trips of values that came from F16/BF16.
  for (let i = 0; i < values.length; i++) out.writeUInt16LE(dtype === 'F16' ? f32ToF16Bits(values[i]!) : bits[i]! >>> 16, 2 * i);
  return out;
}

/**
 * Bytes [start, start + length) of the HF-layout tensor behind `v` (in v.dtype). Reads only the rows covering the
 * range, so a chunked caller reads each row about once; memory is the range plus one row.
 */
export async function readGgufTensorBytes(file: GgufFile, v: GgufTensorView, start = 0, length?: number): Promise<Buffer> {
  const info = ggufTensorInfo(v);
  const n = length ?? info.nbytes - start;
  const elem = info.dtype === 'F32' ? 4 : 2;
  const where = `${file.path}: tensor "${v.gguf.name}"`;
  if (start < 0 || n < 0 || start + n > info.nbytes || start % elem !== 0 || n % elem !== 0) {
    throw new Error(`${where}: byte range ${start}..${start + n} is not whole ${info.dtype} elements inside its ${info.nbytes} bytes`);
  }
  const e0 = start / elem;
  const e1 = (start + n) / elem;
  const oneD = v.shape.length === 1;
  if (oneD && v.ropeHeads) {
    // A q/k bias: one small row, permuted element by element.
    const all = await readGgufRows(file, v.gguf.name, [0]);
    const out = new Float32Array(e1 - e0);
    for (let e = e0; e < e1; e++) out[e - e0] = all[ggufRowOf(e, v.ropeHeads.headDim)]!;
    return encode(out, info.dtype);
  }
  const cols = oneD ? v.shape[0]! : v.gguf.ne[0]!;
  const r0 = Math.floor(e0 / cols);
  const r1 = Math.max(r0, Math.ceil(e1 / cols));
  const rows: number[] = [];
  for (let r = r0; r < r1; r++) rows.push(v.ropeHeads ? ggufRowOf(r, v.ropeHeads.headDim) : r);
  const values = await readGgufRows(file, v.gguf.name, rows);
  return encode(values.subarray(e0 - r0 * cols, e1 - r0 * cols), info.dtype);
}

export interface OpenedGguf {
  file: GgufFile;
  config: ModelConfig;
  views: Map<string, GgufTensorView>;
}

/** Parses the header, builds the config and the HF-named views; refuses tensor types it cannot dequantise. */
export async function openGguf(path: string): Promise<OpenedGguf> {
  const file = await readGgufHeader(path);
  const config = await ggufModelConfig(file);
  const views = ggufTensorViews(file, config);
  for (const v of views.values()) {
    if (!DEQUANTISED_TYPES.includes(v.gguf.type)) {
      throw new Error(`${path}: tensor "${v.gguf.name}" is ${v.gguf.type}, which this reader does not dequantise (supported: ${DEQUANTISED_TYPES.join(', ')})`);
    }
  }
  return { file, config, views };
}

export function isGgufPath(path: string): boolean {
  return basename(path).toLowerCase().endsWith('.gguf');
}
