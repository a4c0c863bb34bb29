// One pipeline stage on one device as the planner prices it: compute time from the device's profile, the boundary
// transfer over its link, and its memory (memory.ts) against the budget, cached for the DP. Not the search itself.
import type { ModelConfig } from '../model/hf-config.js';
import { AGENT_BASE_OVERHEAD_BYTES, stageBytes, type StageShape, type TrainShape } from './memory.js';
import type { DeviceProfile, PlanSettings } from './partition.js';
import { simulate, simulateStepMs, type SimResult, type SimStage } from './simulator.js';
import { opBatchSize, opsPerStep } from './zo-ops.js';

const F32_BYTES = 4;

/** Stage s of S over layers [a, b): the first holds the embedding, the last (ending at L) the head. */
export function shapeOf(S: number, L: number, s: number, a: number, b: number): StageShape {
  return { layerStart: a, layerEnd: b, hasEmbedding: s === 0, hasHead: s === S - 1 && b === L };
}

/** The memory model's view of a stage with `after` stages behind it: 1F1B keeps min(after + 1, m) micro-batches. */
export function trainShape(t: PlanSettings, after: number, d: DeviceProfile): TrainShape {
  return { ...t, microBatchesInFlight: Math.min(after + 1, t.microBatches), agentBaseBytes: d.agentBaseBytes, matmulRowBlock: d.matmulRowBlock };
}

/** Boundary tensor transfer of one op over one device's link: [B, T, hidden] f32 (B x2·queriesPerOp in zo). */
export function boundaryMs(c: ModelConfig, t: PlanSettings, d: DeviceProfile): number {
  const rows = opBatchSize(t) * t.seqLen;
  return ((rows * c.hiddenSize * F32_BYTES) / d.linkBytesPerSec) * 1000;
}

/**
 * One micro-batch's forward, backward and boundary transfers on a stage that is (not) first / last. Both transfers
 * over the device's own link and the op's overhead are charged to the stage: opForwardMs / opBackwardMs are the
 * times the stage is taken per op. The runtime pipelines requests (a stage is sent its next op while it computes),
 * which would hide the overhead if it were idle latency; measured on virtual phones it is not (the relay's host
 * processes run on the agents' cores: pipelining took the demo's step from 47 to 44 ms, and a simulator that moved
 * the overhead between stages predicted 1.25-1.31x too fast). docs/engine.md "Planning from measurements".
 */
export function stageTimes(c: ModelConfig, t: PlanSettings, d: DeviceProfile, sh: StageShape, first: boolean, last: boolean) {
  const n = sh.layerEnd - sh.layerStart;
  const zo = t.mode === 'zo';
  const forwardMs = n * d.layerForwardMs + (sh.hasHead ? d.headForwardMs : 0);
  const backwardMs = zo ? 0 : n * d.layerBackwardMs + (sh.hasHead ? d.headBackwardMs : 0);
  // A boundary tensor crosses this device's link once per op that reads or writes it: in from the previous stage
  // (not the first), out to the next (not the last); backprop does it again for the gradient.
  const crossings = (first ? 0 : 1) + (last ? 0 : 1);
  const opTransferMs = crossings * boundaryMs(c, t, d);
  const overheadMs = d.opOverheadMs ?? 0;
  const opForwardMs = forwardMs + opTransferMs + overheadMs;
  const opBackwardMs = zo ? 0 : backwardMs + opTransferMs + overheadMs;
  const transferMs = opTransferMs * (zo ? 1 : 2);
  return { forwardMs, backwardMs, transferMs, opForwardMs, opBackwardMs, totalMs: opForwardMs + opBackwardMs };
}

/**
 * Stage times and memory fits for every (device, layer range, stages behind), computed once. In a contiguous
 * split of non-empty stages, [a, b) is the first stage exactly when a = 0 and the last when b = L, so a stage's
 * time depends only on (device, a, b) and its memory also on how many stages follow it (activations in flight).
 */
export class StageTable {
  readonly L: number;
  private readonly costs: Float64Array[];
  /**
   * Per matmul row block: bytes by (in flight - 1, a, b) with no idle agent RSS, NaN until computed. The idle RSS is
   * a plain term of the sum (memory.ts overheadBytes), so each device adds its own: one table serves all devices.
   */
  private readonly bytes = new Map<number | undefined, Float64Array>();
  private readonly inFlightMax: number;

  constructor(readonly c: ModelConfig, readonly devices: readonly DeviceProfile[], readonly t: PlanSettings) {
    this.L = c.numLayers;
    const n = (this.L + 1) * (this.L + 1);
    this.costs = devices.map(() => new Float64Array(n).fill(NaN));
    this.inFlightMax = Math.max(1, Math.min(t.microBatches, devices.length, this.L));
  }

  /** Time of one micro-batch (forward + backward + transfers) of layers [a, b) on device di, ms. */
  costMs(di: number, a: number, b: number): number {
    const i = a * (this.L + 1) + b;
    const row = this.costs[di];
    if (Number.isNaN(row[i])) {
      const sh: StageShape = { layerStart: a, layerEnd: b, hasEmbedding: a === 0, hasHead: b === this.L };
      row[i] = stageTimes(this.c, this.t, this.devices[di], sh, a === 0, b === this.L).totalMs;
    }
    return row[i];
  }

  /** Whether layers [a, b) fit device di's budget with `after` stages behind it. */
  fits(di: number, a: number, b: number, after: number): boolean {
    return this.bytesOf(di, a, b, after) <= this.devices[di].budgetBytes;
  }

  /** Predicted bytes of layers [a, b) on device di with `after` stages behind it (memory.ts stageBytes). */
  bytesOf(di: number, a: number, b: number, after: number): number {
    const d = this.devices[di];
    const f = Math.min(after + 1, this.inFlightMax);
    let tab = this.bytes.get(d.matmulRowBlock);
    if (!tab) this.bytes.set(d.matmulRowBlock, (tab = new Float64Array(this.inFlightMax * (this.L + 1) * (this.L + 1)).fill(NaN)));
    const i = ((f - 1) * (this.L + 1) + a) * (this.L + 1) + b;
    if (Number.isNaN(tab[i])) {
      const sh: StageShape = { layerStart: a, layerEnd: b, hasEmbedding: a === 0, hasHead: b === this.L };
      tab[i] = stageBytes(this.c, sh, trainShape(this.t, f - 1, { ...d, agentBaseBytes: 0 }));
    }
    return tab[i] + (d.agentBaseBytes ?? AGENT_BASE_OVERHEAD_BYTES);
  }
}

/**
 * The simulator's stages: each op takes its stage for its compute, its own link transfers and its overhead
 * (stageTimes). Between stages nothing is added: the host hands a tensor on the moment it has it (pipeline.ts), and
 * its travel over both links is already in the sending and the receiving op.
 */
function simStages(c: ModelConfig, t: PlanSettings, devs: readonly DeviceProfile[], cuts: readonly number[]): SimStage[] {
  const S = devs.length;
  return devs.map((d, s) => {
    const tm = stageTimes(c, t, d, shapeOf(S, c.numLayers, s, cuts[s], cuts[s + 1]), s === 0, s === S - 1);
    return { forwardMs: tm.opForwardMs, backwardMs: tm.opBackwardMs, sendNextMs: 0, sendPrevMs: 0 };
  });
}

/**
 * The end of a step after every stage's last op: the optimiser's round trips to all stages at once (pipeline.ts:
 * GRAD_NORM then OPTIM_STEP for backprop, zo-step.ts: ZO_STEP), each as long as the slowest device's op overhead.
 */
function optimizerMs(t: PlanSettings, devs: readonly DeviceProfile[]): number {
  const roundTrips = t.mode === 'zo' ? 1 : 2;
  return roundTrips * Math.max(0, ...devs.map((d) => d.opOverheadMs ?? 0));
}

/** The simulated step of devices `devs` (stage order) over layer cuts `cuts` (S + 1 boundaries from 0 to L). */
export function simulateLayout(c: ModelConfig, t: PlanSettings, devs: readonly DeviceProfile[], cuts: readonly number[]): SimResult {
  return simulate(simStages(c, t, devs, cuts), opsPerStep(t), t.mode === 'zo' ? 'zo' : 'backprop', optimizerMs(t, devs));
}

/** simulateLayout's step time alone (the search's fast path). */
export function layoutStepMs(c: ModelConfig, t: PlanSettings, devs: readonly DeviceProfile[], cuts: readonly number[]): number {
  return simulateStepMs(simStages(c, t, devs, cuts), opsPerStep(t), t.mode === 'zo' ? 'zo' : 'backprop') + optimizerMs(t, devs);
}
