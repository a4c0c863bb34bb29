// Pipeline schedules as per-stage op lists: which forward/backward of which micro-batch each stage runs, in order.
// Pure; the runtime (pipeline.ts) executes the lists and waits on cross-stage dependencies.

export type PipeOp = { kind: 'F' | 'B'; micro: number };

/**
 * 1F1B (PipeDream-Flush): stage s first runs min(S-1-s, m) warm-up forwards, then alternates one forward and one
 * backward, then drains the remaining backwards. Stage s holds at most S-s micro-batches of activations.
 */
export function oneFOneB(stages: number, micros: number, stage: number): PipeOp[] {
  const ops: PipeOp[] = [];
  let f = 0;
  let b = 0;
  const warm = Math.min(stages - 1 - stage, micros);
  while (f < warm) ops.push({ kind: 'F', micro: f++ });
  while (f < micros) {
    ops.push({ kind: 'F', micro: f++ });
    ops.push({ kind: 'B', micro: b++ });
  }
  while (b < micros) ops.push({ kind: 'B', micro: b++ });
  return ops;
}

/** Forward-only schedule (evaluation, generation, zeroth-order): every micro-batch forward, in order. */
export function forwardOnly(micros: number): PipeOp[] {
  return Array.from({ length: micros }, (_, micro) => ({ kind: 'F' as const, micro }));
}
