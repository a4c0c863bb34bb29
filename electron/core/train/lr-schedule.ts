// Learning rate at a given step: linear warm-up, then cosine decay to a floor. Pure function.
// Not an optimiser: AdamW itself runs on the agents (OPTIM_STEP).

export interface LrSchedule {
  peakLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Fraction of the peak kept at the end of the cosine. */
  minLrRatio: number;
}

/** step is 1-based, as AdamW's step count. */
export function learningRate(s: LrSchedule, step: number): number {
  if (step <= s.warmupSteps) return (s.peakLr * step) / Math.max(1, s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps));
  const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
  return s.peakLr * (s.minLrRatio + (1 - s.minLrRatio) * cosine);
}
