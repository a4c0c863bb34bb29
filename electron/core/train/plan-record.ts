// What run.json records about planning from measurements: `planning` (the measured profiles, head splits and the
// deployed plan's predictions) and, after training, `measured` beside it (median step time, bubble, peak memory and
// compute time per device, with the ratios a reader compares). Pure; the numbers come from measured-plan.ts and the job.
import type { PipelinePlan } from '../plan/partition.js';
import { bubbleFraction } from '../plan/simulator.js';
import { theoreticalBubble } from '../plan/measured-bubble.js';
import type { Replan, StageMeasurement } from './measured-plan.js';

/** run.json's `planning`: the measured profiles, head splits and the deployed plan's predictions. */
/** `ops`: ops per stage and step (micro-batches; zo-ops.ts opsPerStep in P-RGE). */
export function planningRecord(measured: StageMeasurement[], plan: PipelinePlan, ops: number, r: Replan) {
  return {
    profiles: measured.map((m) => ({ ...m.device, backends: m.profile.backends, shape: m.profile.shape, reps: m.profile.reps })),
    headSplits: measured.map((m) => ({ serial: m.serial, ...m.split, applied: m.splitApplied, why: m.splitError })),
    layout: plan.stages.map((s) => ({ serial: s.serial, layerStart: s.layerStart, layerEnd: s.layerEnd })),
    predictedStepMs: plan.stepMs,
    predictedBubble: bubbleFraction(plan.sim),
    theoreticalBubble: theoreticalBubble(plan.stages.length, ops),
    predictedBytes: plan.stages.map((s) => ({ serial: s.serial, bytes: s.predictedBytes, budgetBytes: s.budgetBytes })),
    // Each stage's compute per step (every op's forward + backward): what its agent's STATS busy time measures.
    predictedBusyMs: plan.stages.map((s) => ({ serial: s.serial, forwardMs: s.forwardMs, backwardMs: s.backwardMs, perStepMs: ops * (s.forwardMs + s.backwardMs) })),
    replan: { redeployed: r.redeploy, gain: r.gain, reason: r.reason, proposedStepMs: r.proposed.stepMs, deployedStepMs: r.current.stepMs },
  };
}
export type PlanningRecord = ReturnType<typeof planningRecord>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * run.json's `measured`, beside the prediction: median step time and bubble over the steps (medians: a loaded host
 * makes single steps noisy), each device's peak RSS, and the ratios a reader compares.
 */
export function measuredRecord(stepMs: number[], bubbles: number[], peakRssBytes: Map<string, number>, busyMs: Map<string, number[]>, planning: PlanningRecord | undefined) {
  const medianStepMs = stepMs.length ? median(stepMs) : null;
  // The agents' own compute time per step (STATS busy_us): how much slower the ops ran than PROFILE timed them.
  const busy = [...busyMs].map(([serial, xs]) => {
    const predicted = planning?.predictedBusyMs.find((p) => p.serial === serial)?.perStepMs;
    const m = median(xs);
    return { serial, medianBusyMsPerStep: m, overPredicted: predicted ? m / predicted : null };
  });
  const bubble = bubbles.length ? median(bubbles) : null;
  return {
    steps: stepMs.length,
    medianStepMs,
    bubble,
    peakRssBytes: [...peakRssBytes].map(([serial, bytes]) => {
      const predicted = planning?.predictedBytes.find((p) => p.serial === serial)?.bytes;
      return { serial, bytes, predictedBytes: predicted ?? null, error: predicted ? (predicted - bytes) / bytes : null };
    }),
    busyMs: busy,
    stepMsOverPredicted: planning && medianStepMs !== null ? medianStepMs / planning.predictedStepMs : null,
  };
}
