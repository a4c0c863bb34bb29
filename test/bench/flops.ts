// Floating-point operation counts of a Llama forward, for achieved GFLOP/s. One multiply-add = 2 FLOPs.
// Counted: the projection matmuls and attention's two matmuls (QK^T, PV); not norms, RoPE, softmax or SwiGLU's
// elementwise work (a few % at these shapes). Attention is counted causally: only the T(T+1)/2 unmasked
// query/key pairs, whatever an implementation spends on the masked half.
import type { ModelConfig } from '../../electron/core/model/hf-config.js';

export interface LayerFlops {
  matmul: number;
  attention: number;
  total: number;
}

export function layerForwardFlops(c: ModelConfig, batch: number, seqLen: number): LayerFlops {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const C = c.hiddenSize;
  const rows = batch * seqLen;
  const matmul = 2 * rows * (C * q + 2 * C * kv + q * C + 3 * C * c.intermediateSize);
  const pairs = batch * ((seqLen * (seqLen + 1)) / 2);
  const attention = 2 * 2 * c.numHeads * c.headDim * pairs;
  return { matmul, attention, total: matmul + attention };
}

/** The whole model over T tokens; `headRows` = positions whose logits are computed (T, or 1 for plain prefill). */
export function modelForwardFlops(c: ModelConfig, batch: number, seqLen: number, headRows: number): number {
  return c.numLayers * layerForwardFlops(c, batch, seqLen).total + 2 * batch * headRows * c.hiddenSize * c.vocabSize;
}
