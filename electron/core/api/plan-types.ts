// The Plan step's data (core/plan/plan-preview.ts makes it): plain JSON types that cross IPC and WebSocket, kept
// apart from the planner's code so that the renderer type-checks them without compiling the planner.
import type { WeightFormat } from '../model/quantize.js';

/** One stage of a layout: layers [layerStart, layerEnd) on the device the run calls `serial`. */
export interface LayoutStage {
  serial: string;
  layerStart: number;
  layerEnd: number;
}

export interface PlanPreviewStage extends LayoutStage {
  hasEmbedding: boolean;
  hasHead: boolean;
  predictedBytes: number;
  budgetBytes: number;
  /** predictedBytes <= budgetBytes (a suggested plan always fits; an edited one may not). */
  fits: boolean;
  memory: { weightBytes: number; loraBytes: number; activationBytes: number; scratchBytes: number; overheadBytes: number };
  /** One micro-batch's forward / backward on this stage and its boundary transfers, ms (assumed speeds). */
  forwardMs: number;
  backwardMs: number;
  transferMs: number;
  /** Share of the simulated step this stage waits. */
  idleFraction: number;
}

export interface PlanPreview {
  /** 'suggested': the planner's split; 'given': the layout the request passed (edited by the user). */
  source: 'suggested' | 'given';
  stages: PlanPreviewStage[];
  /** Devices the chosen plan does not use, with the planner's reason (empty when all are used). */
  leftOut: Array<{ serial: string; reason: string }>;
  stepMs: number;
  tokensPerSec: number;
  /** Simulated mean idle share of the stages, and the 1F1B textbook (p - 1) / (m + p - 1). */
  bubble: number;
  theoreticalBubble: number;
  /** Where the speeds come from, in words (the plan is a prediction until the run measures the phones). */
  assumption: string;
  settings: { mode: 'backprop' | 'zo'; weightFormat: WeightFormat; seqLen: number; microBatches: number; microBatchSize: number; loraRank: number };
}
