// The pipeline bubble of a step as it happened, from the host's op spans (train/pipeline.ts), to set beside the
// simulator's prediction and the 1F1B textbook value (p - 1) / (m + p - 1). Pure arithmetic, milliseconds.
import type { PipelineSpan } from '../api/types.js';

export interface MeasuredBubble {
  /** First op start to last op end, ms. */
  stepMs: number;
  /** Per stage (by index): 1 - busy / stepMs. */
  idleFraction: number[];
  /** Mean of idleFraction: the share of stage-time lost to waiting. */
  bubble: number;
}

/**
 * A stage counts as busy from when an op's input was ready to its reply: F on stage s > 0 waits for F of the same
 * micro-batch on s - 1; B on the last stage for its own F; B on s < last for B on s + 1. runPass already starts a
 * span no earlier than that (and no earlier than the stage's previous reply); the check here keeps spans from other
 * sources honest. The busy part keeps the op's own host <-> agent transfer, which the stage cannot skip.
 */
export function measuredBubble(spans: readonly PipelineSpan[]): MeasuredBubble {
  if (spans.length === 0) return { stepMs: 0, idleFraction: [], bubble: 0 };
  const S = Math.max(...spans.map((x) => x.stage)) + 1;
  const endOf = new Map(spans.map((x) => [`${x.stage}/${x.kind}/${x.micro}`, x.endMs]));
  const readyMs = (x: PipelineSpan): number => {
    const key = x.kind === 'F' ? (x.stage > 0 ? `${x.stage - 1}/F/${x.micro}` : '') : x.stage === S - 1 ? `${x.stage}/F/${x.micro}` : `${x.stage + 1}/B/${x.micro}`;
    return endOf.get(key) ?? x.startMs;
  };
  const t0 = Math.min(...spans.map((x) => x.startMs));
  const stepMs = Math.max(...spans.map((x) => x.endMs)) - t0;
  const busy = new Array<number>(S).fill(0);
  for (const x of spans) busy[x.stage] += Math.max(0, x.endMs - Math.max(x.startMs, readyMs(x)));
  const idleFraction = busy.map((b) => (stepMs > 0 ? 1 - b / stepMs : 0));
  return { stepMs, idleFraction, bubble: idleFraction.reduce((a, b) => a + b, 0) / S };
}

/** 1F1B's bubble with equal stages and free links: (p - 1) / (m + p - 1) for p stages and m micro-batches. */
export function theoreticalBubble(stages: number, microBatches: number): number {
  return (stages - 1) / (microBatches + stages - 1);
}
