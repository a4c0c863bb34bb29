// Fixtures shared by the renderer state tests: the core's answers in the shapes the reducer receives them.
import { currentPlanKey, type Action, type WizardState } from '../../renderer/state.js';

/** The core's plan for the state's current choices (as the Plan step receives it). */
export function planLoaded(s: WizardState, fits = [true, true]): Action {
  const stage = (serial: string, layerStart: number, layerEnd: number, i: number) => ({
    serial, layerStart, layerEnd, hasEmbedding: i === 0, hasHead: i === 1, predictedBytes: 1e6, budgetBytes: fits[i] ? 2e6 : 5e5, fits: fits[i]!,
    memory: { weightBytes: 5e5, loraBytes: 1e5, activationBytes: 2e5, scratchBytes: 1e5, overheadBytes: 1e5 }, forwardMs: 10, backwardMs: 14, transferMs: 1, idleFraction: 0.2,
  });
  return {
    type: 'plan-loaded',
    key: currentPlanKey(s),
    preview: {
      source: s.plan.layout ? 'given' : 'suggested', stages: [stage('A', 0, 3, 0), stage('B', 3, 5, 1)], leftOut: [], stepMs: 120, tokensPerSec: 2000, bubble: 0.2,
      theoreticalBubble: 0.2, assumption: 'assumed', settings: { mode: 'backprop', weightFormat: 'f32', seqLen: 64, microBatches: 4, microBatchSize: 1, loraRank: 8 },
    },
  };
}

