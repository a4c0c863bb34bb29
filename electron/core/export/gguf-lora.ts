// Writes a run's LoRA adapter as a llama.cpp GGUF LoRA adapter, following convert_lora_to_gguf.py for a Llama base:
// general.type "adapter", adapter.type "lora", adapter.lora.alpha, tensors blk.N.<module>.weight.lora_a / .lora_b.
// Not a base-model conversion (gguf-llama.ts) and not merging (merged.ts).
//
// Orientation: PEFT A is [r, in] and B [out, r] row-major; ggml lists the contiguous dimension first, so the same
// bytes are lora_a ne [in, r] and lora_b ne [r, out], which is what llama.cpp checks against the base weight
// ne [in, out]. llama.cpp applies scale * alpha / r with r = lora_a ne[1]. The base GGUF's q/k rows are permuted from
// HF rotate-half to interleaved RoPE order, so lora_b of attn_q / attn_k (its rows are the output rows) gets the
// same permutation; lora_a (input side) is untouched.
import { basename } from 'node:path';
import type { ModelConfig } from '../model/hf-config.js';
import { permuteRopeRows } from '../model/gguf-llama.js';
import { writeGguf, type GgufTensor } from '../model/gguf-write.js';
import type { PeftModule } from './peft.js';
import type { RunAdapter } from './run-adapter.js';

/** llama.cpp tensor base names of the PEFT target modules (LLM_TENSOR_NAMES for LLM_ARCH_LLAMA). */
export const GGUF_MODULE_NAMES: Record<PeftModule, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

export interface GgufLoraOptions {
  /** Tensor precision (default f32). */
  dtype?: 'f32' | 'f16';
  /** general.name (default: the output file's name). */
  name?: string;
}

/** The lora_a / lora_b tensors of `run`, in layer then module order. */
export function ggufLoraTensors(run: RunAdapter, c: ModelConfig, dtype: 'f32' | 'f16'): GgufTensor[] {
  const type = dtype === 'f16' ? 'F16' : 'F32';
  const r = run.adapter.rank;
  const out: GgufTensor[] = [];
  for (const m of run.modules) {
    const base = `blk.${m.layer}.${GGUF_MODULE_NAMES[m.module]}.weight`;
    let b = m.b;
    if (m.module === 'q_proj') b = permuteRopeRows(b, c.numHeads, c.headDim, r);
    if (m.module === 'k_proj') b = permuteRopeRows(b, c.numKvHeads, c.headDim, r);
    out.push({ name: `${base}.lora_a`, ne: [m.inDim, r], type, data: m.a });
    out.push({ name: `${base}.lora_b`, ne: [r, m.outDim], type, data: b });
  }
  return out;
}

/**
 * llama.cpp's adapter.lora.alpha: it scales by alpha / r, so an rsLoRA adapter (alpha / sqrt(r)) is written with
 * alpha * sqrt(r), which gives the same factor.
 */
export function ggufLoraAlpha(run: RunAdapter): number {
  return run.scale * run.adapter.rank;
}

/** Writes the adapter to `outPath` atomically (gguf-write.ts: temp file, fsync, rename). */
export async function writeGgufLora(run: RunAdapter, c: ModelConfig, outPath: string, opts: GgufLoraOptions = {}): Promise<{ bytes: number; tensorCount: number }> {
  // Qwen2 maps to llama.cpp's "qwen2" architecture without the q/k permutation; this writer only produces "llama".
  if (c.modelType === 'qwen2') throw new Error('GGUF LoRA export supports Llama base models only (model_type qwen2 is a different llama.cpp architecture)');
  const tensors = ggufLoraTensors(run, c, opts.dtype ?? 'f32');
  const { bytes } = await writeGguf(outPath, {
    metadata: [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['general.type', { type: 'string', value: 'adapter' }],
      ['general.name', { type: 'string', value: opts.name ?? basename(outPath).replace(/\.gguf$/i, '') }],
      ['adapter.type', { type: 'string', value: 'lora' }],
      ['adapter.lora.alpha', { type: 'f32', value: ggufLoraAlpha(run) }],
    ],
    tensors,
  });
  return { bytes, tensorCount: tensors.length };
}
