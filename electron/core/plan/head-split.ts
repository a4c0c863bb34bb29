// Backend scheduler inside one phone: how many KV groups and MLP columns of each layer go to the secondary
// backend (OpenCL) so that it and the CPU finish together. A layer runs attention (both shares at once, then the
// partial outputs summed), then the MLP likewise (android-agent/src/layer.cpp), so the two parts are chosen
// independently, each minimising max(primary, secondary) + the merge of the partial outputs. Pure; uses the
// PROFILE reply's per-group / per-32-column times (docs/protocol.md "PROFILE reply").
import type { ProfileResult } from '../protocol/profile.js';

export interface HeadSplitShape {
  numKvHeads: number;
  intermediateSize: number;
}

export interface HeadSplit {
  /** SET_SPLIT's gpu_kv_groups and gpu_mlp_cols (a multiple of 32), the same for every layer of the stage. */
  gpuKvGroups: number;
  gpuMlpCols: number;
  /** Predicted forward + backward (training) or forward (zo) of one layer, in ms, unsplit and split. */
  layerMsUnsplit: number;
  layerMsSplit: number;
  /** The secondary backend's name, or undefined when the device has none (then the split is 0, 0). */
  secondary?: string;
}

export interface HeadSplitOptions {
  mode?: 'backprop' | 'zo';
  /**
   * Summing one pair of partial outputs (an [N, hidden] add on the primary), paid once per split part per layer
   * for forward and once for backward. Default: the profile's own per-layer time share of one elementwise pass,
   * estimated as 1% of the primary's layer forward (RMSNorm measured 0.4% of a TinyLlama layer, docs/engine.md).
   */
  mergeMs?: number;
  /**
   * KV groups move in multiples of this (default 1): with 4-bit grouped base weights o_proj's column slice must be a
   * multiple of 32 (stage_model.cpp set_split), so g x heads-per-group x head_dim must be (kvGroupStepFor).
   */
  kvGroupStep?: number;
}

/** The smallest KV-group count whose o_proj column slice is a multiple of `columnMultiple` (32 for q4_0 / fp4). */
export function kvGroupStepFor(shape: { numHeads: number; numKvHeads: number; headDim: number }, columnMultiple: number): number {
  const colsPerGroup = (shape.numHeads / shape.numKvHeads) * shape.headDim;
  for (let g = 1; g <= shape.numKvHeads; g++) if ((g * colsPerGroup) % columnMultiple === 0) return g;
  return shape.numKvHeads + 1; // no slice works: attention stays on the primary
}

/** Per-unit and whole-layer times of one backend, fwd (+ bwd when training), averaged over the stage's layers. */
function backendTimes(p: ProfileResult, name: string, train: boolean) {
  const layers = p.layers.filter((l) => l.backend === name);
  const layerMs = layers.length ? layers.reduce((s, l) => s + l.forwardMs + (train ? l.backwardMs : 0), 0) / layers.length : 0;
  const h = p.heads.find((x) => x.backend === name);
  const m = p.mlp.find((x) => x.backend === name);
  return {
    layerMs,
    perGroupMs: h ? h.attentionForwardMsPerGroup + (train ? h.attentionBackwardMsPerGroup : 0) : Infinity,
    per32ColsMs: m ? m.forwardMsPer32Cols + (train ? m.backwardMsPer32Cols : 0) : Infinity,
  };
}

/** The best k in [0, units] for one part: units split between the primary (rate a) and the secondary (rate b). */
function bestShare(units: number, primaryPerUnit: number, secondaryPerUnit: number, mergeMs: number, step = 1): { k: number; ms: number } {
  let best = { k: 0, ms: units * primaryPerUnit };
  for (let k = step; k <= units; k += step) {
    const ms = Math.max((units - k) * primaryPerUnit, k * secondaryPerUnit) + mergeMs;
    if (ms < best.ms) best = { k, ms };
  }
  return best;
}

/** Chooses the split for one device from its PROFILE reply; without a secondary backend it is (0, 0). */
export function chooseHeadSplit(shape: HeadSplitShape, p: ProfileResult, opts: HeadSplitOptions = {}): HeadSplit {
  const train = (opts.mode ?? 'backprop') === 'backprop';
  const primary = p.backends[0].name;
  const cpu = backendTimes(p, primary, train);
  const secondary = p.backends.find((b) => b.role === 'secondary')?.name;
  if (!secondary) return { gpuKvGroups: 0, gpuMlpCols: 0, layerMsUnsplit: cpu.layerMs, layerMsSplit: cpu.layerMs };
  const gpu = backendTimes(p, secondary, train);
  const mlpBlocks = Math.floor(shape.intermediateSize / 32);
  // What neither part covers (norms, residual adds, RoPE tables) stays on the primary, unsplit.
  const attnMs = shape.numKvHeads * cpu.perGroupMs;
  const mlpMs = mlpBlocks * cpu.per32ColsMs;
  const restMs = Math.max(0, cpu.layerMs - attnMs - mlpMs);
  const mergeMs = (opts.mergeMs ?? 0.01 * backendTimes(p, primary, false).layerMs) * (train ? 2 : 1);
  const attn = bestShare(shape.numKvHeads, cpu.perGroupMs, gpu.perGroupMs, mergeMs, opts.kvGroupStep ?? 1);
  const mlp = bestShare(mlpBlocks, cpu.per32ColsMs, gpu.per32ColsMs, mergeMs);
  return {
    gpuKvGroups: attn.k,
    gpuMlpCols: mlp.k * 32,
    layerMsUnsplit: cpu.layerMs,
    layerMsSplit: restMs + attn.ms + mlp.ms, // columns past the last whole block of 32 stay in restMs
    secondary,
  };
}
