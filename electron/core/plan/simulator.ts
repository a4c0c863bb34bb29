// Discrete-event simulation of one pipeline step: 1F1B (backprop) or forward-only (P-RGE's 2q copies sent as
// micro-batches). Each stage runs its op list (train/schedule.ts, the lists the runtime executes) in order; an op
// starts when its stage is free and its input has arrived over the links. Pure arithmetic, milliseconds.
import { forwardOnly, oneFOneB, type PipeOp } from '../train/schedule.js';

export interface SimStage {
  /** Forward of one micro-batch on this stage. */
  forwardMs: number;
  /** Backward of one micro-batch (0 in forward-only mode). */
  backwardMs: number;
  /** Moving one micro-batch's boundary tensor from this stage to the next (forward) and back (gradient). */
  sendNextMs: number;
  sendPrevMs: number;
}

export interface SimSpan {
  stage: number;
  kind: 'F' | 'B';
  micro: number;
  startMs: number;
  endMs: number;
}

export interface SimResult {
  stepMs: number;
  /** Per stage: its ops in execution order. */
  timelines: SimSpan[][];
  /** Per stage: fraction of the step it is idle (1 - busy / step). */
  idleFraction: number[];
}

/**
 * Simulates one step with `micros` micro-batches. Links are assumed independent (each phone has its own cable
 * and the host relays at once), so a transfer only delays its consumer; the host relay is folded into the send
 * times. `optimizerMs` (per stage, run after its last op) is added for AdamW / ZO_STEP.
 */
export function simulate(stages: SimStage[], micros: number, mode: 'backprop' | 'zo', optimizerMs = 0): SimResult {
  const S = stages.length;
  if (S === 0 || micros <= 0) throw new Error(`simulate needs at least one stage and one micro-batch (got ${S}, ${micros})`);
  const ops: PipeOp[][] = stages.map((_, s) => (mode === 'backprop' ? oneFOneB(S, micros, s) : forwardOnly(micros)));
  const fEnd = stages.map(() => new Array<number>(micros).fill(NaN));
  const bEnd = stages.map(() => new Array<number>(micros).fill(NaN));
  const next = new Array<number>(S).fill(0); // index of each stage's next op
  const free = new Array<number>(S).fill(0); // when each stage finishes its current op
  const timelines: SimSpan[][] = stages.map(() => []);
  // Repeatedly run every op whose input is ready; the op order per stage is fixed, so this settles in at most
  // (total ops) rounds and reports a deadlock (an impossible schedule) instead of looping.
  let remaining = ops.reduce((n, o) => n + o.length, 0);
  while (remaining > 0) {
    let progressed = false;
    for (let s = 0; s < S; s++) {
      while (next[s] < ops[s].length) {
        const op = ops[s][next[s]];
        const i = op.micro;
        let ready: number;
        if (op.kind === 'F') ready = s === 0 ? 0 : fEnd[s - 1][i] + stages[s - 1].sendNextMs;
        else ready = s === S - 1 ? fEnd[s][i] : bEnd[s + 1][i] + stages[s + 1].sendPrevMs;
        if (Number.isNaN(ready)) break;
        const start = Math.max(ready, free[s]);
        const end = start + (op.kind === 'F' ? stages[s].forwardMs : stages[s].backwardMs);
        (op.kind === 'F' ? fEnd : bEnd)[s][i] = end;
        free[s] = end;
        timelines[s].push({ stage: s, kind: op.kind, micro: i, startMs: start, endMs: end });
        next[s]++;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) throw new Error('pipeline schedule deadlocked in simulation (an op waits on one never run)');
  }
  // The step ends when the last stage's loss is back (forward-only) or every stage's optimiser step is done.
  const ends = free.map((f) => f + optimizerMs);
  const stepMs = Math.max(...ends);
  const idleFraction = stages.map((st, s) => 1 - (micros * (st.forwardMs + (mode === 'backprop' ? st.backwardMs : 0)) + optimizerMs) / stepMs);
  return { stepMs, timelines, idleFraction };
}

/** Fraction of stage-time lost to the pipeline bubble: 1 - busy / (stages x step). */
export function bubbleFraction(r: SimResult): number {
  return r.idleFraction.reduce((a, b) => a + b, 0) / r.idleFraction.length;
}

/**
 * simulate()'s step time alone, for the planner's search (thousands of candidate layouts): the same op lists
 * (1F1B as train/schedule.ts oneFOneB, or forward-only) and the same start = max(input ready, stage free) rule,
 * over typed arrays instead of op and span objects. Equal to simulate(stages, micros, mode).stepMs.
 */
export function simulateStepMs(stages: readonly SimStage[], micros: number, mode: 'backprop' | 'zo'): number {
  const S = stages.length;
  const m = micros;
  if (S === 0 || m <= 0) throw new Error(`simulate needs at least one stage and one micro-batch (got ${S}, ${m})`);
  const nOps = mode === 'backprop' ? 2 * m : m;
  const fEnd = new Float64Array(S * m).fill(NaN);
  const bEnd = new Float64Array(S * m).fill(NaN);
  const next = new Int32Array(S);
  const free = new Float64Array(S);
  let remaining = S * nOps;
  while (remaining > 0) {
    let progressed = false;
    for (let s = 0; s < S; s++) {
      const warm = Math.min(S - 1 - s, m);
      const st = stages[s];
      while (next[s] < nOps) {
        const j = next[s];
        // Op j of stage s (oneFOneB): warm-up forwards, then F/B pairs, then the remaining backwards.
        let isF: boolean;
        let i: number;
        if (mode !== 'backprop') (isF = true), (i = j);
        else if (j < warm) (isF = true), (i = j);
        else if (j < 2 * m - warm) (isF = (j - warm) % 2 === 0), (i = isF ? warm + (j - warm) / 2 : (j - warm - 1) / 2);
        else (isF = false), (i = j - m);
        const ready = isF
          ? (s === 0 ? 0 : fEnd[(s - 1) * m + i] + stages[s - 1].sendNextMs)
          : (s === S - 1 ? fEnd[s * m + i] : bEnd[(s + 1) * m + i] + stages[s + 1].sendPrevMs);
        if (Number.isNaN(ready)) break;
        const end = Math.max(ready, free[s]) + (isF ? st.forwardMs : st.backwardMs);
        (isF ? fEnd : bEnd)[s * m + i] = end;
        free[s] = end;
        next[s]++;
        remaining--;
        progressed = true;
      }
    }
    if (!progressed) throw new Error('pipeline schedule deadlocked in simulation (an op waits on one never run)');
  }
  let step = 0;
  for (let s = 0; s < S; s++) step = Math.max(step, free[s]);
  return step;
}
