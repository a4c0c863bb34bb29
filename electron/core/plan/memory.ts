// Predicted memory of one pipeline stage on a phone: base weights, LoRA state, activations kept for backward.
// An estimate for planning (checked against the agent's measured peak later); not an allocator.
import type { ModelConfig } from '../model/hf-config.js';

export interface StageShape {
  layerStart: number;
  layerEnd: number;
  hasEmbedding: boolean;
  hasHead: boolean;
}

export interface TrainShape {
  loraRank: number;
  microBatchSize: number;
  seqLen: number;
  /** Micro-batches whose activations a stage holds at once (1F1B: stages - stageIndex). */
  microBatchesInFlight: number;
}

const F32_BYTES = 4;
/** Agent binary, stacks, allocator slack: measured ~6 MiB on x86_64, rounded up. */
const AGENT_OVERHEAD_BYTES = 16 * 2 ** 20;

export function layerWeightParams(c: ModelConfig): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attn = c.hiddenSize * (q + 2 * kv) + q * c.hiddenSize + (c.attentionBias ? q + 2 * kv : 0);
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  return attn + mlp + 2 * c.hiddenSize;
}

/** LoRA parameters of one layer when all seven projections carry an adapter of rank r. */
export function layerLoraParams(c: ModelConfig, r: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const h = c.hiddenSize;
  const i = c.intermediateSize;
  const dims: Array<[number, number]> = [[h, q], [h, kv], [h, kv], [q, h], [h, i], [h, i], [i, h]];
  return dims.reduce((sum, [inDim, outDim]) => sum + r * (inDim + outDim), 0);
}

/** Floats one layer keeps per token for backward (inputs of every matmul, norms, attention rows). */
function layerActivationFloatsPerToken(c: ModelConfig, seqLen: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return 4 * c.hiddenSize + 2 * q + 2 * kv + 3 * c.intermediateSize + c.numHeads * seqLen;
}

export function stageBytes(c: ModelConfig, s: StageShape, t: TrainShape): number {
  const layers = s.layerEnd - s.layerStart;
  const embedParams = c.vocabSize * c.hiddenSize;
  let weightParams = layers * layerWeightParams(c);
  if (s.hasEmbedding) weightParams += embedParams;
  if (s.hasHead) weightParams += c.hiddenSize + embedParams;
  // LoRA A and B, B's gradient and two AdamW moments (A frozen or not, budget for the trainable case).
  const loraBytes = layers * layerLoraParams(c, t.loraRank) * F32_BYTES * 5;
  const tokens = t.microBatchSize * t.seqLen;
  let actFloats = layers * layerActivationFloatsPerToken(c, t.seqLen) * tokens * t.microBatchesInFlight;
  if (s.hasHead) actFloats += 2 * tokens * c.vocabSize; // logits + their gradient, one micro-batch at a time
  return weightParams * F32_BYTES + loraBytes + actFloats * F32_BYTES + AGENT_OVERHEAD_BYTES;
}
