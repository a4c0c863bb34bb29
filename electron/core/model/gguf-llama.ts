// Writes a Hugging Face Llama folder as a GGUF model the way llama.cpp's convert_hf_to_gguf.py (LlamaModel) does:
// "llama" architecture keys, GGUF tensor names, q/k rows permuted from HF rotate-half RoPE to the interleaved pairs
// llama.cpp rotates, matrices in F32 or F16 with 1-D tensors kept F32. Not quantisation, not LoRA adapters.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { ModelConfig } from './hf-config.js';
import { openModelFolder, readModelTensorF32, type ModelFolder } from './model-folder.js';
import { writeGguf, type GgufTensor, type GgufValue } from './gguf-write.js';
import { readSentencePieceVocab, spmVocabMetadata, type SpmVocab } from './gguf-vocab.js';

/** llama_ftype values of general.file_type. */
const FILE_TYPE = { f32: 0, f16: 1 } as const;

export interface LlamaGgufOptions {
  /** Precision of the 2-D matrices; norms (1-D) stay F32, as the convert script keeps them. */
  dtype: 'f32' | 'f16';
  vocab: SpmVocab;
  /** general.name (default: the folder's name). */
  name?: string;
}

/**
 * HF rotate-half row order -> llama.cpp interleaved order for a q or k projection of `nHead` heads (rows
 * nHead * headDim, each `cols` wide; a bias is cols = 1). convert_hf_to_gguf.py's permute:
 * w.reshape(n_head, 2, head_dim / 2, cols).swapaxes(1, 2): new row h*D + 2i + s = old row h*D + s*D/2 + i.
 */
export function permuteRopeRows(w: Float32Array, nHead: number, headDim: number, cols: number): Float32Array {
  if (w.length !== nHead * headDim * cols) throw new Error(`permuteRopeRows: ${w.length} values are not ${nHead} heads x ${headDim} x ${cols}`);
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * headDim + s * half + i) * cols;
        const to = (h * headDim + 2 * i + s) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** The "llama" architecture keys for `c` (what LlamaModel.set_gguf_parameters writes). */
export function llamaArchMetadata(c: ModelConfig, name: string, dtype: LlamaGgufOptions['dtype']): [string, GgufValue][] {
  return [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', { type: 'u32', value: FILE_TYPE[dtype] }],
    ['llama.vocab_size', { type: 'u32', value: c.vocabSize }],
    ['llama.context_length', { type: 'u32', value: c.maxPositionEmbeddings ?? 2048 }],
    ['llama.embedding_length', { type: 'u32', value: c.hiddenSize }],
    ['llama.block_count', { type: 'u32', value: c.numLayers }],
    ['llama.feed_forward_length', { type: 'u32', value: c.intermediateSize }],
    ['llama.rope.dimension_count', { type: 'u32', value: c.headDim }],
    ['llama.attention.head_count', { type: 'u32', value: c.numHeads }],
    ['llama.attention.head_count_kv', { type: 'u32', value: c.numKvHeads }],
    ['llama.attention.key_length', { type: 'u32', value: c.headDim }],
    ['llama.attention.value_length', { type: 'u32', value: c.headDim }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: c.rmsNormEps }],
    ['llama.rope.freq_base', { type: 'f32', value: c.ropeTheta }],
  ];
}

/** GGUF tensors of the model in convert order; data is read from the folder lazily, one tensor at a time. */
export function llamaGgufTensors(folder: ModelFolder, dtype: LlamaGgufOptions['dtype']): GgufTensor[] {
  const c = folder.config;
  const matrix = dtype === 'f16' ? 'F16' : 'F32';
  const out: GgufTensor[] = [];
  // HF [out, in] row-major is ggml ne [in, out]: the same bytes.
  const add = (gguf: string, hf: string, dims: number[], map?: (w: Float32Array) => Float32Array) => {
    out.push({
      name: gguf,
      ne: [...dims].reverse(),
      type: dims.length === 1 ? 'F32' : matrix,
      data: async () => {
        const w = await readModelTensorF32(folder, hf);
        return map ? map(w) : w;
      },
    });
  };
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const C = c.hiddenSize;
  add('token_embd.weight', 'model.embed_tokens.weight', [c.vocabSize, C]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    const b = `blk.${i}`;
    add(`${b}.attn_norm.weight`, `${p}.input_layernorm.weight`, [C]);
    add(`${b}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, [q, C], (w) => permuteRopeRows(w, c.numHeads, c.headDim, C));
    add(`${b}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, [kv, C], (w) => permuteRopeRows(w, c.numKvHeads, c.headDim, C));
    add(`${b}.attn_v.weight`, `${p}.self_attn.v_proj.weight`, [kv, C]);
    if (c.attentionBias) {
      add(`${b}.attn_q.bias`, `${p}.self_attn.q_proj.bias`, [q], (w) => permuteRopeRows(w, c.numHeads, c.headDim, 1));
      add(`${b}.attn_k.bias`, `${p}.self_attn.k_proj.bias`, [kv], (w) => permuteRopeRows(w, c.numKvHeads, c.headDim, 1));
      add(`${b}.attn_v.bias`, `${p}.self_attn.v_proj.bias`, [kv]);
    }
    add(`${b}.attn_output.weight`, `${p}.self_attn.o_proj.weight`, [C, q]);
    add(`${b}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, [C]);
    add(`${b}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`, [c.intermediateSize, C]);
    add(`${b}.ffn_up.weight`, `${p}.mlp.up_proj.weight`, [c.intermediateSize, C]);
    add(`${b}.ffn_down.weight`, `${p}.mlp.down_proj.weight`, [C, c.intermediateSize]);
  }
  add('output_norm.weight', 'model.norm.weight', [C]);
  // Tied embeddings: no output.weight; llama.cpp then uses token_embd.weight for the head (as convert does).
  if (!c.tieWordEmbeddings) add('output.weight', 'lm_head.weight', [c.vocabSize, C]);
  return out;
}

/** The folder's SentencePiece vocabulary (tokenizer.model), as convert_hf_to_gguf.py reads it for Llama. */
export async function folderSpmVocab(folder: ModelFolder): Promise<SpmVocab> {
  const path = join(folder.dir, 'tokenizer.model');
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: the GGUF "llama" vocabulary is read from the SentencePiece tokenizer.model (tokenizer.json alone is not converted yet)`);
  }
  const c = folder.config;
  return readSentencePieceVocab(path, { bosId: c.bosTokenId ?? 1, eosId: c.eosTokenIds[0] ?? 2, vocabSize: c.vocabSize });
}

/** Writes `folder` (a path or an opened folder) as a GGUF model at `outPath`, atomically. */
export async function writeLlamaGguf(folder: string | ModelFolder, outPath: string, opts: LlamaGgufOptions): Promise<{ bytes: number; tensorCount: number }> {
  const model = typeof folder === 'string' ? await openModelFolder(folder) : folder;
  const c = model.config;
  if (c.modelType === 'qwen2') throw new Error(`${model.dir}: model_type qwen2 maps to llama.cpp's "qwen2" architecture, which this writer does not produce`);
  if (opts.vocab.tokens.length !== c.vocabSize) {
    throw new Error(`${model.dir}: the vocabulary has ${opts.vocab.tokens.length} tokens but config.json says vocab_size ${c.vocabSize}`);
  }
  const name = opts.name ?? model.dir.split(/[\\/]/).pop() ?? 'model';
  const tensors = llamaGgufTensors(model, opts.dtype);
  const { bytes } = await writeGguf(outPath, { metadata: [...llamaArchMetadata(c, name, opts.dtype), ...spmVocabMetadata(opts.vocab)], tensors });
  return { bytes, tensorCount: tensors.length };
}
