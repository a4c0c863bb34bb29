// The LoRA target modules of a Llama-family decoder layer: names, protocol bit, and [in, out] dimensions.
// Naming follows docs/protocol.md (Hugging Face module paths with the global layer index).
import type { ModelConfig } from '../model/hf-config.js';

export const LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraModule = (typeof LORA_MODULES)[number];

/** LOAD_STAGE target_mask bit of each module (protocol.md). */
export function targetMask(modules: readonly LoraModule[]): number {
  return modules.reduce((mask, m) => mask | (1 << LORA_MODULES.indexOf(m)), 0);
}

export function modulePath(layer: number, m: LoraModule): string {
  const block = m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${block}.${m}`;
}

/** [inFeatures, outFeatures] of the frozen projection a LoRA adapter wraps. */
export function moduleDims(c: ModelConfig, m: LoraModule): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  switch (m) {
    case 'q_proj': return [c.hiddenSize, q];
    case 'k_proj': case 'v_proj': return [c.hiddenSize, kv];
    case 'o_proj': return [q, c.hiddenSize];
    case 'gate_proj': case 'up_proj': return [c.hiddenSize, c.intermediateSize];
    case 'down_proj': return [c.intermediateSize, c.hiddenSize];
  }
}
