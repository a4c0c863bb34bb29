// Repeats a timed operation: one warm-up, then at least minReps runs and until minTotalMs has passed (at most
// maxReps, and no new run once maxTotalMs has passed, so a slow engine still finishes). Reports the median
// (robust to a shared machine's hiccups) and the minimum of every named duration, with the run count.

export interface Timing {
  medianMs: number;
  minMs: number;
  reps: number;
}

export interface MeasureOptions {
  warmup?: number;
  minReps?: number;
  maxReps?: number;
  minTotalMs?: number;
  /** No run starts after this much timed work, even below minReps (default 120 s). */
  maxTotalMs?: number;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * `run` returns the durations it measured itself, by name (e.g. { wallMs, busyMs }); each becomes a Timing.
 * `quick` (the --quick flag): one warm-up and one timed run.
 */
export async function measure(run: () => Promise<Record<string, number>>, opts: MeasureOptions & { quick?: boolean } = {}): Promise<Record<string, Timing>> {
  const warmup = opts.warmup ?? 1;
  const minReps = opts.quick ? 1 : (opts.minReps ?? 3);
  const maxReps = opts.quick ? 1 : (opts.maxReps ?? 10);
  const minTotalMs = opts.quick ? 0 : (opts.minTotalMs ?? 3000);
  const maxTotalMs = opts.maxTotalMs ?? 120_000;
  for (let i = 0; i < warmup; i++) await run();
  const samples = new Map<string, number[]>();
  const t0 = performance.now();
  let reps = 0;
  for (;;) {
    const elapsed = performance.now() - t0;
    if (reps >= maxReps || (reps >= 1 && elapsed >= maxTotalMs) || (reps >= minReps && elapsed >= minTotalMs)) break;
    const r = await run();
    for (const [k, v] of Object.entries(r)) {
      if (!samples.has(k)) samples.set(k, []);
      samples.get(k)!.push(v);
    }
    reps++;
  }
  const out: Record<string, Timing> = {};
  for (const [k, v] of samples) out[k] = { medianMs: median(v), minMs: Math.min(...v), reps: v.length };
  return out;
}
