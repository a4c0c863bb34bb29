// Device profiles when no PROFILE measurement is available: per-layer times from the layer's FLOPs at an assumed
// sustained phone CPU throughput, and an assumed adb link. Stated in the plan output as assumptions.
import type { ModelConfig } from '../model/hf-config.js';
import type { DeviceProfile } from './partition.js';

/** Sustained fp32 matmul throughput assumed for a phone's big cores (NEON, 4 threads): an estimate, not measured. */
export const DEFAULT_PHONE_GFLOPS = 20;
/** Backward / forward time of a layer with LoRA on all seven projections (docs/engine.md: 1.43 measured). */
export const BACKWARD_OVER_FORWARD = 1.43;
/** USB 2 adb throughput typically reached by a push (bytes/s): an estimate, not measured. */
export const DEFAULT_LINK_BYTES_PER_SEC = 25e6;
/** One op's cost beyond compute and transfer through adb (ms): an estimate (virtual phones measure 0.5-0.6 ms). */
export const DEFAULT_OP_OVERHEAD_MS = 0.5;

/** Forward FLOPs of one decoder layer for `tokens` rows of a sequence of length T (matmuls + attention). */
export function layerForwardFlops(c: ModelConfig, tokens: number, seqLen: number): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const matmul = 2 * tokens * (c.hiddenSize * (2 * q + 2 * kv) + 3 * c.hiddenSize * c.intermediateSize);
  const attention = 2 * tokens * seqLen * q; // causal: half of QK^T and PV each
  return matmul + attention;
}

export function defaultDeviceProfile(c: ModelConfig, serial: string, budgetBytes: number, tokens: number, seqLen: number, gflops = DEFAULT_PHONE_GFLOPS): DeviceProfile {
  const layerForwardMs = (layerForwardFlops(c, tokens, seqLen) / (gflops * 1e9)) * 1000;
  const headForwardMs = ((2 * tokens * c.hiddenSize * c.vocabSize) / (gflops * 1e9)) * 1000;
  return {
    serial, budgetBytes, layerForwardMs, layerBackwardMs: layerForwardMs * BACKWARD_OVER_FORWARD,
    headForwardMs, headBackwardMs: 2 * headForwardMs, linkBytesPerSec: DEFAULT_LINK_BYTES_PER_SEC,
    opOverheadMs: DEFAULT_OP_OVERHEAD_MS,
  };
}
