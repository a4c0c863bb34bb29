// Exact dynamic programs over the cut points of a pipeline: for devices in a given order, the contiguous split
// that minimises the slowest stage's time per micro-batch (then, among those, the total stage time) under every
// device's memory budget. Which devices and orders to try is device-search.ts's business, not this file's.
import type { StageTable } from './stage-cost.js';

/** A split: `order` (device indices, stage order) and `cuts` (order.length + 1 layer boundaries, 0 to L). */
export interface Split {
  order: number[];
  cuts: number[];
  /** Slowest stage's time per micro-batch, ms: the DP's objective. */
  bottleneckMs: number;
  /** Sum of the stages' times per micro-batch, ms: least among splits of equal bottleneck (see tiesOrBeats). */
  totalMs: number;
}

/*
 * Why two passes: the step of a pipeline of m micro-batches is about (m - 1) x bottleneck + sum of the stage
 * times (fill and drain; exact for a forward-only flow shop), so among the splits with the least bottleneck the
 * one with the least total is the one to keep. Minimising the pair lexicographically in one pass is not exact (a
 * prefix with a worse max but a smaller sum can win once a later stage sets the max), hence pass 1 finds the least
 * bottleneck B and pass 2 the least total over splits whose every stage takes at most B. Both exact.
 *
 * The inner loops stop early: with a stage's start fixed (and the last stage ending at L only), more layers never
 * cost less time or memory, so once a range is too slow or too big, every longer one is too.
 */

/** Every device of `order` takes one non-empty stage, in that order; undefined when no split fits in memory. */
export function splitOrdered(tab: StageTable, order: readonly number[]): Split | undefined {
  const k = order.length;
  const L = tab.L;
  if (k === 0 || k > L) return undefined;
  // G[s][a]: least bottleneck of stages s..k-1 covering layers [a, L); stage s has k-1-s stages behind it.
  const G = Array.from({ length: k + 1 }, () => new Float64Array(L + 1).fill(Infinity));
  G[k][L] = 0;
  for (let s = k - 1; s >= 0; s--) {
    const di = order[s];
    for (let a = s; a <= (s === 0 ? 0 : L - (k - s)); a++) {
      let best = Infinity;
      for (let b = s === k - 1 ? L : a + 1; b <= L - (k - 1 - s); b++) {
        const cost = tab.costMs(di, a, b);
        if (cost >= best) break; // monotone: a later end only adds layers
        const rest = G[s + 1][b];
        if (rest >= best) continue;
        if (!tab.fits(di, a, b, k - 1 - s)) break; // likewise for memory
        best = rest > cost ? rest : cost;
      }
      G[s][a] = best;
    }
  }
  const cap = G[0][0];
  if (cap === Infinity) return undefined;
  // Pass 2: least total with every stage <= cap (the pass-1 split qualifies, so this always succeeds).
  const H = Array.from({ length: k + 1 }, () => new Float64Array(L + 1).fill(Infinity));
  const end = Array.from({ length: k }, () => new Int32Array(L + 1).fill(-1));
  H[k][L] = 0;
  for (let s = k - 1; s >= 0; s--) {
    const di = order[s];
    for (let a = s; a <= (s === 0 ? 0 : L - (k - s)); a++) {
      for (let b = s === k - 1 ? L : a + 1; b <= L - (k - 1 - s); b++) {
        const cost = tab.costMs(di, a, b);
        if (cost > cap) break;
        const total = H[s + 1][b] + weighed(cost, cap);
        if (total === Infinity || !tiesOrBeats(total, H[s][a])) continue;
        if (!tab.fits(di, a, b, k - 1 - s)) break;
        if (total < H[s][a]) H[s][a] = total;
        end[s][a] = b;
      }
    }
  }
  const cuts = [0];
  let totalMs = 0;
  for (let s = 0, a = 0; s < k; s++) {
    cuts.push(end[s][a]);
    totalMs += tab.costMs(order[s], a, (a = end[s][a]));
  }
  return { order: [...order], cuts, bottleneckMs: cap, totalMs };
}

/**
 * Pass 2's tie-breaks, for splits of equal bottleneck and total (identical phones give many; forward-only does not
 * care, 1F1B does). First the most even stage times: each stage's time counts (1 + 1e-6 x its share of the
 * bottleneck), a sum of squares too small to outweigh a real difference in total. 10 equal phones, 22 layers,
 * m = 32: 3+3+3+3+3+3+1+1+1+1 layers take 321 s a step, 3+3+3+2+2+2+2+2+2+1 317 s. Then the longer stages first:
 * the same layers as 2+2+2+2+2+2+3+3+3+1 take 333 s. "Equal" is within 1e-9: the same sum added in another order
 * may differ in its last bits.
 */
const BALANCE = 1e-6;
function weighed(costMs: number, capMs: number): number {
  return capMs > 0 ? costMs * (1 + (BALANCE * costMs) / capMs) : costMs;
}
function tiesOrBeats(total: number, best: number): boolean {
  return total <= best + 1e-9 * Math.abs(best) || best === Infinity;
}

/**
 * Devices in `order` where any may be skipped: for every stage count k (1 to min(devices, L)), the least
 * bottleneck over all order-preserving choices of k of them and all splits (Infinity when none fits). One backward
 * DP serves every k, since a stage's memory depends on the stages behind it, not before.
 */
export function bottlenecksSkipping(tab: StageTable, order: readonly number[]): Float64Array {
  const n = order.length;
  const L = tab.L;
  const R = Math.min(n, L);
  const W = L + 1;
  const P = (n + 1) * W;
  // G[r][i][a]: least bottleneck covering [a, L) with exactly r + 1 stages on devices order[i..] (some skipped).
  const G = new Float64Array(R * P).fill(Infinity);
  for (let r = 0; r < R; r++) {
    for (let i = n - 1; i >= 0; i--) {
      const di = order[i];
      for (let a = 0; a + r + 1 <= L; a++) {
        let best = G[r * P + (i + 1) * W + a]; // device i skipped
        for (let b = r === 0 ? L : a + 1; b <= L - r; b++) {
          const cost = tab.costMs(di, a, b);
          if (cost >= best) break;
          const rest = r === 0 ? 0 : G[(r - 1) * P + (i + 1) * W + b];
          if (rest >= best) continue;
          if (!tab.fits(di, a, b, r)) break;
          best = rest > cost ? rest : cost;
        }
        G[r * P + i * W + a] = best;
      }
    }
  }
  const out = new Float64Array(R);
  for (let k = 1; k <= R; k++) out[k - 1] = G[(k - 1) * P];
  return out;
}

/** Pass 2 of the skipping DP: k of `order`'s devices (order kept), every stage <= cap, least total time. */
export function splitSkipping(tab: StageTable, order: readonly number[], k: number, cap: number): Split | undefined {
  const n = order.length;
  const L = tab.L;
  if (k < 1 || k > Math.min(n, L)) return undefined;
  const W = L + 1;
  const P = (n + 1) * W;
  const H = new Float64Array(k * P).fill(Infinity);
  const pick = new Int32Array(k * P).fill(-1); // the stage's end b, or -1 where device i is skipped
  for (let r = 0; r < k; r++) {
    for (let i = n - 1; i >= 0; i--) {
      const di = order[i];
      for (let a = 0; a + r + 1 <= L; a++) {
        let best = H[r * P + (i + 1) * W + a];
        let end = -1;
        for (let b = r === 0 ? L : a + 1; b <= L - r; b++) {
          const cost = tab.costMs(di, a, b);
          if (cost > cap) break;
          const total = (r === 0 ? 0 : H[(r - 1) * P + (i + 1) * W + b]) + weighed(cost, cap);
          if (total === Infinity || !tiesOrBeats(total, best)) continue;
          if (!tab.fits(di, a, b, r)) break;
          if (total < best) best = total;
          end = b;
        }
        H[r * P + i * W + a] = best;
        pick[r * P + i * W + a] = end;
      }
    }
  }
  if (H[(k - 1) * P] === Infinity) return undefined;
  const chosen: number[] = [];
  const cuts = [0];
  let bottleneckMs = 0;
  let totalMs = 0;
  for (let r = k - 1, i = 0, a = 0; r >= 0; i++) {
    const b = pick[r * P + i * W + a];
    if (b < 0) continue;
    chosen.push(order[i]);
    bottleneckMs = Math.max(bottleneckMs, tab.costMs(order[i], a, b));
    totalMs += tab.costMs(order[i], a, b);
    cuts.push((a = b));
    r--;
  }
  return { order: chosen, cuts, bottleneckMs, totalMs };
}
