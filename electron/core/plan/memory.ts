// Predicted memory of one pipeline stage on a phone: base weights, LoRA state, activations kept for backward.
// An estimate for planning (checked against the agent's measured peak later); not an allocator.
import type { ModelConfig } from '../model/hf-config.js';
import { isGroupedFormat, matrixBytes, QUANT_GROUP, type WeightFormat } from '../model/quantize.js';

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
  /** Storage format of the base weight matrices (default f32); norms and biases are always f32. */
  weightFormat?: WeightFormat;
}

const F32_BYTES = 4;
/** Agent binary, stacks, allocator slack: measured ~6 MiB on x86_64, rounded up. */
const AGENT_OVERHEAD_BYTES = 16 * 2 ** 20;

/** The (rows, cols) of one layer's weight matrices: q, k, v, o, gate, up, down. */
function layerMatrices(c: ModelConfig): Array<[number, number]> {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const h = c.hiddenSize;
  const i = c.intermediateSize;
  return [[q, h], [kv, h], [kv, h], [h, q], [i, h], [i, h], [h, i]];
}

/** Bytes of one matrix as stage-pack.ts stores it: grouped formats fall back to f16 when cols is not a multiple of 32. */
function storedMatrixBytes(f: WeightFormat, rows: number, cols: number): number {
  return isGroupedFormat(f) && cols % QUANT_GROUP !== 0 ? matrixBytes('f16', rows, cols) : matrixBytes(f, rows, cols);
}

/** Bytes of one layer's base weights in format f: the matrices in f, norms and biases in f32. */
export function layerWeightBytes(c: ModelConfig, f: WeightFormat): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const matrices = layerMatrices(c).reduce((sum, [r, k]) => sum + storedMatrixBytes(f, r, k), 0);
  return matrices + ((c.attentionBias ? q + 2 * kv : 0) + 2 * c.hiddenSize) * F32_BYTES;
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

/** Base weight bytes of a stage: its layers, plus the embedding and/or the final norm and LM head. */
export function stageWeightBytes(c: ModelConfig, s: StageShape, f: WeightFormat): number {
  const embedBytes = storedMatrixBytes(f, c.vocabSize, c.hiddenSize);
  let bytes = (s.layerEnd - s.layerStart) * layerWeightBytes(c, f);
  if (s.hasEmbedding) bytes += embedBytes;
  // A tied head is the embedding matrix: one copy when the stage holds both.
  if (s.hasHead) bytes += c.hiddenSize * F32_BYTES + (s.hasEmbedding && c.tieWordEmbeddings ? 0 : embedBytes);
  return bytes;
}

export function stageBytes(c: ModelConfig, s: StageShape, t: TrainShape): number {
  const layers = s.layerEnd - s.layerStart;
  const weightBytes = stageWeightBytes(c, s, t.weightFormat ?? 'f32');
  // LoRA A and B, B's gradient and two AdamW moments (A frozen or not, budget for the trainable case).
  const loraBytes = layers * layerLoraParams(c, t.loraRank) * F32_BYTES * 5;
  const tokens = t.microBatchSize * t.seqLen;
  let actFloats = layers * layerActivationFloatsPerToken(c, t.seqLen) * tokens * t.microBatchesInFlight;
  if (s.hasHead) actFloats += 2 * tokens * c.vocabSize; // logits + their gradient, one micro-batch at a time
  return weightBytes + loraBytes + actFloats * F32_BYTES + AGENT_OVERHEAD_BYTES;
}
