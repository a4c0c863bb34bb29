// Predicted peak memory of one pipeline stage on a phone. The terms mirror the agent's own accounting
// (android-agent/src/stage_model.cpp activation_bytes / forward_scratch_bytes / backward_scratch_bytes,
// lora.cpp bytes_needed, session.cpp's FORWARD budget check), so a plan that fits here is one the agent's
// --memory-budget-mb check accepts; a measured process overhead (calibrated against STATS peak_rss_bytes by
// test/integration/plan-memory-calibration.test.ts) turns that into the resident memory the phone really sees.
import { opBatchSize } from './zo-ops.js';
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
  /** LOAD_STAGE target_mask: bit m = module m (q k v o gate up down) has an adapter; default all seven. */
  targetMask?: number;
  /** LOAD_STAGE flags bit 0: A trainable (plain LoRA) instead of frozen (LoRA-FA, what job.ts loads). */
  trainA?: boolean;
  /** LOAD_STAGE flags bit 1: keep only each layer's input and recompute the layer in BACKWARD. */
  recompute?: boolean;
  /** 'backprop' (1F1B, kept activations) or 'zo' (P-RGE: forward of 2*queries copies, nothing kept). */
  mode?: 'backprop' | 'zo';
  /** P-RGE queries q (zo mode): each micro-batch is evaluated as 2q copies. */
  zoQueries?: number;
  /** Queries per ZO_FORWARD op (divides q; default q): an op's batch is 2·zoQueriesPerOp copies (zo-ops.ts). */
  zoQueriesPerOp?: number;
  /**
   * Resident bytes of the idle agent on this device (STATS rss right after HELLO): binary, libc, thread pool and,
   * above all, the OpenCL driver when one is loaded (PoCL: ~79 MiB; a phone's vendor driver differs), which only
   * a measurement knows. Default AGENT_BASE_OVERHEAD_BYTES (a CPU-only agent).
   */
  agentBaseBytes?: number;
  /**
   * Activation rows the CPU matmul packs per block (the kernels' mc: 128 NEON, 192 AVX2, 1024 AVX-512); its
   * packed copy, K x min(rows, mc) floats, is the largest workspace buffer. Default 128 (arm64 phones).
   */
  matmulRowBlock?: number;
}

/** The CPU matmul's activation row block (kernels/src/cpu/matmul_*.cpp mc) for a HELLO backends entry. */
export function matmulRowBlockFor(backends: readonly string[]): number {
  const cpu = backends.find((b) => b.startsWith('cpu')) ?? '';
  if (/avx512/i.test(cpu)) return 1024;
  if (/avx2/i.test(cpu)) return 192;
  if (/neon/i.test(cpu)) return 128;
  return 64; // the scalar kernel
}

/** Where a stage's predicted bytes go; `totalBytes` is their sum. */
export interface StageMemory {
  weightBytes: number;
  /** LoRA values, gradients and AdamW moments (m, v). */
  loraBytes: number;
  /** Activations kept for BACKWARD, all micro-batches in flight. */
  keptActivationBytes: number;
  /** The larger of the forward and backward scratch of one micro-batch (including the reply's copy). */
  scratchBytes: number;
  /** The CPU backend's per-thread matmul workspace (packed activation rows), beyond the agent's own scratch. */
  workspaceBytes: number;
  /** Agent process beyond its buffers: binary, libc, thread pool stacks, allocator slack, wire buffers. */
  overheadBytes: number;
  totalBytes: number;
}

const F32_BYTES = 4;
const ALL_MODULES_MASK = 0x7f;
/**
 * The idle agent process without OpenCL: binary + libc + libstdc++ pages, thread pool stacks. Measured VmHWM after
 * HELLO with --opencl off: 3.9 MiB on x86_64 (2 threads); rounded up for arm64's larger pages and more threads.
 */
export const AGENT_BASE_OVERHEAD_BYTES = 5 * 2 ** 20;
/**
 * Wire copies the accounting leaves out: the request payload (input activations) is received, decoded into a tensor
 * and the reply encoded, so each micro-batch boundary tensor exists ~2 more times on top of the counted one.
 */
const WIRE_COPIES = 2;

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

/** [in, out] of module m's adapter (lora.cpp module_dims): q, k, v, o, gate, up, down. */
function moduleDims(c: ModelConfig): Array<[number, number]> {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const h = c.hiddenSize;
  const i = c.intermediateSize;
  return [[h, q], [h, kv], [h, kv], [q, h], [h, i], [h, i], [i, h]];
}

/** LoRA parameters of one layer when the modules of `targetMask` carry an adapter of rank r. */
export function layerLoraParams(c: ModelConfig, r: number, targetMask = ALL_MODULES_MASK): number {
  return moduleDims(c).reduce((sum, [inDim, outDim], m) => sum + (targetMask & (1 << m) ? r * (inDim + outDim) : 0), 0);
}

/** lora.cpp bytes_needed for one layer: B value, grad, m, v; A value, plus grad, m, v when trainable. */
export function layerLoraStateBytes(c: ModelConfig, r: number, targetMask = ALL_MODULES_MASK, trainA = false): number {
  return moduleDims(c).reduce((sum, [inDim, outDim], m) => {
    if (!(targetMask & (1 << m))) return sum;
    return sum + (4 * outDim * r + (trainA ? 4 : 1) * r * inDim) * F32_BYTES;
  }, 0);
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

/** layer.cpp alloc_layer_acts, unsplit layer: floats one layer keeps for N = B*T rows (not its input). */
function layerActFloats(c: ModelConfig, B: number, T: number, r: number, mask: number): number {
  const N = B * T;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  let adapted = 0;
  for (let m = 0; m < 7; m++) if (mask & (1 << m)) adapted++;
  // xn1, h, xn2 (C each) + rstd1, rstd2; q, k, v, y; lse per head and row; g, u, s; each adapter's x·A (R).
  return N * (3 * c.hiddenSize + 2 + 2 * q + 2 * kv + c.numHeads + 3 * c.intermediateSize + adapted * r);
}

/** stage_model.cpp activation_bytes: what one kept micro-batch of [B, T] holds until its BACKWARD. */
export function keptActivationBytes(c: ModelConfig, s: StageShape, B: number, T: number, t: Pick<TrainShape, 'loraRank' | 'targetMask' | 'recompute'>): number {
  const N = B * T;
  const C = c.hiddenSize;
  const layers = s.layerEnd - s.layerStart;
  let floats = N * C * layers; // every layer's input
  if (!t.recompute) floats += layers * layerActFloats(c, B, T, t.loraRank, t.targetMask ?? ALL_MODULES_MASK);
  if (s.hasHead) floats += N * (2 * C + 1) + N; // final_in, xf, rstdf, mask
  return floats * F32_BYTES + (s.hasHead ? N * 4 : 0);
}

/** stage_model.cpp forward_scratch_bytes. */
export function forwardScratchBytes(c: ModelConfig, s: StageShape, B: number, T: number, keep: boolean, t: Pick<TrainShape, 'loraRank' | 'targetMask' | 'recompute'>): number {
  const N = B * T;
  const C = c.hiddenSize;
  const V = c.vocabSize;
  let floats = 3 * N * C; // cur + the two shares' partial outputs
  if ((!keep || t.recompute) && s.layerEnd > s.layerStart) floats += layerActFloats(c, B, T, t.loraRank, t.targetMask ?? ALL_MODULES_MASK);
  if (s.hasHead) floats += N * V + N + (keep ? 0 : N * (2 * C + 1));
  floats += s.hasHead ? N * V : N * C; // the reply's copy
  return floats * F32_BYTES;
}

/** stage_model.cpp backward_scratch_bytes. */
export function backwardScratchBytes(c: ModelConfig, s: StageShape, B: number, T: number, t: Pick<TrainShape, 'loraRank' | 'targetMask' | 'recompute'>): number {
  const N = B * T;
  const C = c.hiddenSize;
  const V = c.vocabSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  let floats = N * (6 * C + 3 * c.intermediateSize + 4 * q + 4 * kv);
  if (t.recompute && s.layerEnd > s.layerStart) floats += layerActFloats(c, B, T, t.loraRank, t.targetMask ?? ALL_MODULES_MASK);
  if (s.hasHead) floats += 2 * N * V + N * C;
  floats += N * C;
  return floats * F32_BYTES;
}

/** The predicted peak of a stage during training, term by term. */
export function stageMemory(c: ModelConfig, s: StageShape, t: TrainShape): StageMemory {
  const layers = s.layerEnd - s.layerStart;
  const weightBytes = stageWeightBytes(c, s, t.weightFormat ?? 'f32');
  const loraBytes = layers * layerLoraStateBytes(c, t.loraRank, t.targetMask ?? ALL_MODULES_MASK, t.trainA ?? false);
  const B = opBatchSize(t);
  const T = t.seqLen;
  let keptActivation = 0;
  let scratchBytes: number;
  if (t.mode === 'zo') {
    scratchBytes = forwardScratchBytes(c, s, B, T, false, t); // nothing kept: one reused layer's buffers
  } else {
    keptActivation = t.microBatchesInFlight * keptActivationBytes(c, s, B, T, t);
    scratchBytes = Math.max(forwardScratchBytes(c, s, B, T, true, t), backwardScratchBytes(c, s, B, T, t));
  }
  // The boundary tensors on the wire: the input received (tokens are tiny) and the reply sent.
  const wireBytes = WIRE_COPIES * B * T * c.hiddenSize * F32_BYTES * (s.hasEmbedding && s.hasHead ? 0 : 1);
  const overheadBytes = (t.agentBaseBytes ?? AGENT_BASE_OVERHEAD_BYTES) + wireBytes;
  // The widest reduction is a backward input gradient: K = vocab for the LM head's dx (hence the head stage's
  // extra ~N x V floats), else the widest of hidden, q and intermediate; plus the LoRA segment of width R.
  const q = c.numHeads * c.headDim;
  const widestK = Math.max(c.hiddenSize, q, c.intermediateSize, s.hasHead ? c.vocabSize : 0) + t.loraRank;
  const workspaceBytes = widestK * Math.min(B * T, t.matmulRowBlock ?? 128) * F32_BYTES;
  const totalBytes = weightBytes + loraBytes + keptActivation + scratchBytes + workspaceBytes + overheadBytes;
  return { weightBytes, loraBytes, keptActivationBytes: keptActivation, scratchBytes, workspaceBytes, overheadBytes, totalBytes };
}

/** Predicted peak resident bytes of a stage (stageMemory's total). */
export function stageBytes(c: ModelConfig, s: StageShape, t: TrainShape): number {
  return stageMemory(c, s, t).totalBytes;
}
