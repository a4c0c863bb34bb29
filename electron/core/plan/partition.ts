// Splits a model's layers into contiguous pipeline stages over devices: minimise the slowest stage's time per
// micro-batch (compute from each device's profile + the activation transfer over its link) under each device's
// memory budget (memory.ts), by exact dynamic programming over cut points (stage-dp.ts); which devices to use and
// in which order is searched by device-search.ts and judged by the simulated step time (simulator.ts). Pure; no I/O.
import type { ModelConfig } from '../model/hf-config.js';
import type { WeightFormat } from '../model/quantize.js';
import { stageBytes, stageMemory, type StageMemory, type StageShape, type TrainShape } from './memory.js';
import type { SimResult } from './simulator.js';
import { shapeOf, simulateLayout, stageTimes, StageTable, trainShape } from './stage-cost.js';
import { splitOrdered } from './stage-dp.js';
import { anyFits, chooseDevices, MAX_EXHAUSTIVE_DEVICES, type LeftOutDevice } from './device-search.js';

export type { LeftOutDevice } from './device-search.js';
export { MORE_DEVICES_TOLERANCE } from './device-search.js';

export interface PlanDevice {
  serial: string;
  /** Memory the stage may use on this device. */
  budgetBytes: number;
  /** Relative compute speed (layers per unit time); equal for identical phones. */
  speed: number;
}

export interface PlannedStage extends StageShape {
  serial: string;
  predictedBytes: number;
}

/** Thrown when no split fits; the message says which device lacks how much and what would help. */
export class PlanError extends Error {}

/** A device as the planner sees it: budget, measured (or default) speeds and link. */
export interface DeviceProfile {
  serial: string;
  budgetBytes: number;
  /** One decoder layer's forward / backward for one micro-batch of the plan's [B, T], in ms. */
  layerForwardMs: number;
  layerBackwardMs: number;
  /** Final norm + LM head (+ loss) forward / backward for one micro-batch, ms (the last stage pays it). */
  headForwardMs: number;
  headBackwardMs: number;
  /** Host <-> device link, bytes per second each way (activations are relayed through the host). */
  linkBytesPerSec: number;
  /**
   * What one forward or backward costs beyond its compute and its tensors' transfer (the request's round trip, the
   * host's encoding and checksums, the adb hops), ms; every op pays it once. Absent: not counted (a hand-built
   * profile); default-profile.ts assumes DEFAULT_OP_OVERHEAD_MS.
   */
  opOverheadMs?: number;
  /** Idle agent RSS (memory.ts TrainShape.agentBaseBytes); default the CPU-only agent's. */
  agentBaseBytes?: number;
  /** matmul row block of the device's CPU kernel (memory.ts TrainShape.matmulRowBlock). */
  matmulRowBlock?: number;
}

export type PlanSettings = Omit<TrainShape, 'microBatchesInFlight' | 'agentBaseBytes' | 'matmulRowBlock'> & { microBatches: number };

export interface PipelinePlanStage extends PlannedStage {
  memory: StageMemory;
  budgetBytes: number;
  forwardMs: number;
  backwardMs: number;
  transferMs: number;
}

export interface PipelinePlan {
  stages: PipelinePlanStage[];
  /** Slowest stage's time per micro-batch (the DP objective), ms. */
  bottleneckMs: number;
  sim: SimResult;
  stepMs: number;
  tokensPerSec: number;
  /** How devices and orders were searched, in words. */
  orderSearch: string;
  /** Devices given but not used, each with why (the predicted step with and without it); empty when all are. */
  leftOut: LeftOutDevice[];
}

/** Up to this many devices every order of every subset is tried; beyond, a bounded search (device-search.ts). */
export const MAX_PERMUTED_DEVICES = MAX_EXHAUSTIVE_DEVICES;

function buildPlan(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings, cuts: number[], bottleneckMs: number, orderSearch: string, leftOut: LeftOutDevice[]): PipelinePlan {
  const S = devices.length;
  const stages: PipelinePlanStage[] = devices.map((d, s) => {
    const sh = shapeOf(S, c.numLayers, s, cuts[s], cuts[s + 1]);
    const memory = stageMemory(c, sh, trainShape(t, S - 1 - s, d));
    const tm = stageTimes(c, t, d, sh, s === 0, s === S - 1);
    return { ...sh, serial: d.serial, predictedBytes: memory.totalBytes, memory, budgetBytes: d.budgetBytes, forwardMs: tm.forwardMs, backwardMs: tm.backwardMs, transferMs: tm.transferMs };
  });
  const sim = simulateLayout(c, t, devices, cuts);
  const tokens = t.microBatches * t.microBatchSize * t.seqLen;
  return { stages, bottleneckMs, sim, stepMs: sim.stepMs, tokensPerSec: tokens / (sim.stepMs / 1000), orderSearch, leftOut };
}

/**
 * Predicts a given layout (devices in stage order, `cuts` = S + 1 layer boundaries) with these profiles: the same
 * stage times, memory and simulation planPipeline reports, so a deployed plan and a proposed one compare alike.
 */
export function evaluateLayout(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings, cuts: number[]): PipelinePlan {
  checkCounts(c, devices.length);
  if (cuts.length !== devices.length + 1 || cuts[0] !== 0 || cuts[devices.length] !== c.numLayers) {
    throw new Error(`a layout of ${devices.length} stages needs ${devices.length + 1} cuts from 0 to ${c.numLayers}, got ${cuts.join(',')}`);
  }
  const S = devices.length;
  const bottleneckMs = Math.max(...devices.map((d, s) => stageTimes(c, t, d, shapeOf(S, c.numLayers, s, cuts[s], cuts[s + 1]), s === 0, s === S - 1).totalMs));
  return buildPlan(c, devices, t, cuts, bottleneckMs, 'the given layout', []);
}

/**
 * Plans the pipeline: which devices, in which order, and the split, judged by the simulated step; a device that
 * would slow it is left out (a plan with more devices is kept within MORE_DEVICES_TOLERANCE) and `leftOut` says
 * why. keepOrder: every device in the given order, only the split is chosen. PlanError when nothing fits.
 */
export function planPipeline(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings, opts: { keepOrder?: boolean } = {}): PipelinePlan {
  if (opts.keepOrder) {
    checkCounts(c, devices.length);
    const split = splitOrdered(new StageTable(c, devices, t), devices.map((_, i) => i));
    if (!split) throw new PlanError(explainNoFit(c, devices, t));
    return buildPlan(c, devices, t, split.cuts, split.bottleneckMs, 'the given order', []);
  }
  if (devices.length === 0) checkCounts(c, 0);
  const choice = chooseDevices(c, devices, t);
  if (!choice) throw new PlanError(explainNoFit(c, devices, t));
  const { split } = choice.chosen;
  return buildPlan(c, split.order.map((i) => devices[i]), t, split.cuts, split.bottleneckMs, choice.description, choice.leftOut);
}

function checkCounts(c: ModelConfig, S: number): void {
  if (S === 0) throw new PlanError('no ready device to train on: connect a phone or start virtual phones');
  if (S > c.numLayers) throw new PlanError(`${S} devices but the model has only ${c.numLayers} layers: use at most ${c.numLayers} devices`);
}

const gib = (x: number) => `${(x / 2 ** 30).toFixed(2)} GiB`;

/**
 * Why nothing fits, and which changes would: each suggestion is re-checked with the same DP, so "would fit" is
 * a computed fact, not advice.
 */
export function explainNoFit(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings): string {
  const S = devices.length;
  const L = c.numLayers;
  // Per device (in the given order): the least memory its even share needs, vs its budget.
  const per = Math.ceil(L / S);
  const lacks = devices.map((d, s) => {
    const a = Math.min(s * per, L - 1);
    const b = s === S - 1 ? L : Math.min(a + per, L);
    const need = stageBytes(c, shapeOf(S, L, s, a, b), trainShape(t, S - 1 - s, d));
    return need > d.budgetBytes ? `${d.serial} has ${gib(d.budgetBytes)} for training, its even share (layers ${a}-${b - 1}${s === 0 ? ' + embedding' : ''}${s === S - 1 ? ' + LM head' : ''}) needs ${gib(need)}, ${gib(need - d.budgetBytes)} more` : '';
  }).filter(Boolean);
  const tries: Array<[string, PlanSettings | undefined, DeviceProfile[]]> = [
    [`4-bit weights (--weight-format q4_0)`, t.weightFormat === 'q4_0' ? undefined : { ...t, weightFormat: 'q4_0' as WeightFormat }, devices],
    [`sequences of ${Math.floor(t.seqLen / 2)} tokens (--seq-len ${Math.floor(t.seqLen / 2)})`, t.seqLen > 16 ? { ...t, seqLen: Math.floor(t.seqLen / 2) } : undefined, devices],
    [`micro-batch size 1 (--micro-batch-size 1)`, t.microBatchSize > 1 ? { ...t, microBatchSize: 1 } : undefined, devices],
    [`recomputing activations in backward`, !t.recompute && t.mode !== 'zo' ? { ...t, recompute: true } : undefined, devices],
    [`forward-only P-RGE training (--mode zo)`, t.mode !== 'zo' ? { ...t, mode: 'zo', zoQueries: 1 } : undefined, devices],
  ];
  const biggest = devices.reduce((x, y) => (y.budgetBytes > x.budgetBytes ? y : x));
  if (S < L) tries.push([`another phone like ${biggest.serial} (${gib(biggest.budgetBytes)})`, t, [...devices, { ...biggest, serial: `${biggest.serial}-copy` }]]);
  const verdicts = tries.filter(([, ts]) => ts).map(([what, ts, ds]) => `${what}: ${anyFits(c, ds, ts!) ? 'would fit' : 'would still not fit'}`);
  return `the model does not fit on these ${S} device(s): ${lacks.join('; ') || 'no contiguous split fits every budget'}. Checked alternatives: ${verdicts.join('; ')}.`;
}

/**
 * The planner job.ts calls: devices in the given order (the deployer's), relative speeds only. Kept with its
 * original signature; layer time = 1 / speed, the head like vocab / (3 x intermediate) layers, no link cost.
 */
export function partitionLayers(c: ModelConfig, devices: PlanDevice[], t: Omit<TrainShape, 'microBatchesInFlight'>): PlannedStage[] {
  checkCounts(c, devices.length);
  const headLayers = c.vocabSize / (3 * c.intermediateSize);
  const profiles: DeviceProfile[] = devices.map((d) => ({
    serial: d.serial, budgetBytes: d.budgetBytes, layerForwardMs: 1 / d.speed, layerBackwardMs: 0,
    headForwardMs: headLayers / d.speed, headBackwardMs: 0, linkBytesPerSec: Infinity,
  }));
  // job.ts runs every micro-batch it is given; in-flight is capped by the stage count (1F1B), so plan for S.
  const plan = planPipeline(c, profiles, { ...t, microBatches: devices.length }, { keepOrder: true });
  return plan.stages.map((st) => ({ layerStart: st.layerStart, layerEnd: st.layerEnd, hasEmbedding: st.hasEmbedding, hasHead: st.hasHead, serial: st.serial, predictedBytes: st.predictedBytes }));
}
