// Splits a model's layers into contiguous pipeline stages over devices: minimise the slowest stage's time per
// micro-batch (compute from each device's profile + the activation transfer over its link) under each device's
// memory budget (memory.ts), by exact dynamic programming over cut points; for up to MAX_PERMUTED_DEVICES devices
// every device order is tried and the orders compared by the simulated step time (simulator.ts). Pure; no I/O.
import type { ModelConfig } from '../model/hf-config.js';
import type { WeightFormat } from '../model/quantize.js';
import { stageBytes, stageMemory, type StageMemory, type StageShape, type TrainShape } from './memory.js';
import { simulate, type SimResult, type SimStage } from './simulator.js';

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
  /** Device orders compared ("all permutations" or "by speed"). */
  orderSearch: string;
}

/** Up to this many devices every order is tried (6! = 720 DP runs); beyond, fastest devices first. */
export const MAX_PERMUTED_DEVICES = 6;
const F32_BYTES = 4;

function shapeOf(S: number, L: number, s: number, a: number, b: number): StageShape {
  return { layerStart: a, layerEnd: b, hasEmbedding: s === 0, hasHead: s === S - 1 && b === L };
}

function trainShape(t: PlanSettings, S: number, s: number, d: DeviceProfile): TrainShape {
  return { ...t, microBatchesInFlight: Math.min(S - s, t.microBatches), agentBaseBytes: d.agentBaseBytes, matmulRowBlock: d.matmulRowBlock };
}

/** Boundary tensor transfer of one micro-batch over one device's link: [B, T, hidden] f32 (x2q copies in zo). */
function boundaryMs(c: ModelConfig, t: PlanSettings, d: DeviceProfile): number {
  const rows = t.microBatchSize * t.seqLen * (t.mode === 'zo' ? 2 * (t.zoQueries ?? 1) : 1);
  return ((rows * c.hiddenSize * F32_BYTES) / d.linkBytesPerSec) * 1000;
}

function stageTimes(c: ModelConfig, t: PlanSettings, d: DeviceProfile, sh: StageShape, S: number, s: number) {
  const n = sh.layerEnd - sh.layerStart;
  const zo = t.mode === 'zo';
  const forwardMs = n * d.layerForwardMs + (sh.hasHead ? d.headForwardMs : 0);
  const backwardMs = zo ? 0 : n * d.layerBackwardMs + (sh.hasHead ? d.headBackwardMs : 0);
  // Each boundary is crossed on both devices' links (device -> host -> device); backprop crosses it twice.
  const crossings = (s > 0 ? 1 : 0) + (s < S - 1 ? 1 : 0);
  const transferMs = crossings * boundaryMs(c, t, d) * (zo ? 1 : 2);
  return { forwardMs, backwardMs, transferMs, totalMs: forwardMs + backwardMs + transferMs };
}

/** Exact DP for one device order: the split minimising the slowest stage; undefined when nothing fits. */
function splitForOrder(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings): { cuts: number[]; bottleneckMs: number } | undefined {
  const S = devices.length;
  const L = c.numLayers;
  const best = Array.from({ length: S + 1 }, () => new Array<number>(L + 1).fill(Infinity));
  const cut = Array.from({ length: S + 1 }, () => new Array<number>(L + 1).fill(-1));
  best[0][0] = 0;
  for (let s = 1; s <= S; s++) {
    const d = devices[s - 1];
    for (let b = s; b <= L - (S - s); b++) {
      for (let a = s - 1; a < b; a++) {
        if (best[s - 1][a] === Infinity) continue;
        const sh = shapeOf(S, L, s - 1, a, b);
        const cost = Math.max(best[s - 1][a], stageTimes(c, t, d, sh, S, s - 1).totalMs);
        if (cost >= best[s][b]) continue; // cheaper test first: the memory model is the costly one
        if (stageBytes(c, sh, trainShape(t, S, s - 1, d)) > d.budgetBytes) continue;
        best[s][b] = cost;
        cut[s][b] = a;
      }
    }
  }
  if (best[S][L] === Infinity) return undefined;
  const cuts: number[] = [L];
  for (let s = S, b = L; s > 0; s--) cuts.unshift((b = cut[s][b]));
  return { cuts, bottleneckMs: best[S][L] };
}

function* permutations<T>(items: T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield items.slice();
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const p of permutations(rest)) yield [items[i], ...p];
  }
}

function buildPlan(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings, cuts: number[], bottleneckMs: number, orderSearch: string): PipelinePlan {
  const S = devices.length;
  const stages: PipelinePlanStage[] = devices.map((d, s) => {
    const sh = shapeOf(S, c.numLayers, s, cuts[s], cuts[s + 1]);
    const memory = stageMemory(c, sh, trainShape(t, S, s, d));
    const tm = stageTimes(c, t, d, sh, S, s);
    return { ...sh, serial: d.serial, predictedBytes: memory.totalBytes, memory, budgetBytes: d.budgetBytes, forwardMs: tm.forwardMs, backwardMs: tm.backwardMs, transferMs: tm.transferMs };
  });
  const simStages: SimStage[] = stages.map((st, s) => ({
    forwardMs: st.forwardMs,
    backwardMs: st.backwardMs,
    sendNextMs: s < S - 1 ? boundaryMs(c, t, devices[s]) + boundaryMs(c, t, devices[s + 1]) : 0,
    sendPrevMs: s > 0 ? boundaryMs(c, t, devices[s]) + boundaryMs(c, t, devices[s - 1]) : 0,
  }));
  const sim = simulate(simStages, t.microBatches, t.mode === 'zo' ? 'zo' : 'backprop');
  const tokens = t.microBatches * t.microBatchSize * t.seqLen;
  return { stages, bottleneckMs, sim, stepMs: sim.stepMs, tokensPerSec: tokens / (sim.stepMs / 1000), orderSearch };
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
  const bottleneckMs = Math.max(...devices.map((d, s) => stageTimes(c, t, d, shapeOf(devices.length, c.numLayers, s, cuts[s], cuts[s + 1]), devices.length, s).totalMs));
  return buildPlan(c, devices, t, cuts, bottleneckMs, 'the given layout');
}

/** Plans the pipeline: best split and (for few devices) best device order; PlanError when nothing fits. */
export function planPipeline(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings, opts: { keepOrder?: boolean } = {}): PipelinePlan {
  checkCounts(c, devices.length);
  const orders: DeviceProfile[][] = opts.keepOrder
    ? [devices]
    : devices.length <= MAX_PERMUTED_DEVICES
      ? [...permutations(devices)]
      : [[...devices].sort((x, y) => x.layerForwardMs + x.layerBackwardMs - (y.layerForwardMs + y.layerBackwardMs))];
  const orderSearch = opts.keepOrder ? 'the given order' : devices.length <= MAX_PERMUTED_DEVICES ? `all ${orders.length} device orders` : 'fastest devices first';
  let best: PipelinePlan | undefined;
  for (const order of orders) {
    const split = splitForOrder(c, order, t);
    if (!split) continue;
    // Orders with the same bottleneck can differ in fill/drain; the simulator breaks the tie.
    if (best && split.bottleneckMs > best.bottleneckMs * 1.0001 + 1e-9) continue;
    const plan = buildPlan(c, order, t, split.cuts, split.bottleneckMs, orderSearch);
    if (!best || plan.stepMs < best.stepMs - 1e-9) best = plan;
  }
  if (!best) throw new PlanError(explainNoFit(c, devices, t));
  return best;
}

function checkCounts(c: ModelConfig, S: number): void {
  if (S === 0) throw new PlanError('no ready device to train on: connect a phone or start virtual phones');
  if (S > c.numLayers) throw new PlanError(`${S} devices but the model has only ${c.numLayers} layers: use at most ${c.numLayers} devices`);
}

/** Whether any split and order fits in memory (speed ignored). */
function fitsAny(c: ModelConfig, devices: DeviceProfile[], t: PlanSettings): boolean {
  const orders = devices.length <= MAX_PERMUTED_DEVICES ? [...permutations(devices)] : [[...devices].sort((x, y) => y.budgetBytes - x.budgetBytes)];
  return orders.some((o) => splitForOrder(c, o, t) !== undefined);
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
    const need = stageBytes(c, shapeOf(S, L, s, a, b), trainShape(t, S, s, d));
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
  const verdicts = tries.filter(([, ts]) => ts).map(([what, ts, ds]) => `${what}: ${fitsAny(c, ds, ts!) ? 'would fit' : 'would still not fit'}`);
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
