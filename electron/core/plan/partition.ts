// Splits a model's layers into contiguous pipeline stages over an ordered list of devices: minimise the slowest
// stage's time under each device's memory budget (exact dynamic programming). Pure arithmetic; no I/O.
import type { ModelConfig } from '../model/hf-config.js';
import { stageBytes, type StageShape, type TrainShape } from './memory.js';

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

/** Cost of a stage in "layer units": the embedding lookup is free, the LM head costs like vocab/intermediate. */
function stageCost(c: ModelConfig, s: StageShape, speed: number): number {
  const headCost = s.hasHead ? c.vocabSize / (3 * c.intermediateSize) : 0;
  return (s.layerEnd - s.layerStart + headCost) / speed;
}

export function partitionLayers(c: ModelConfig, devices: PlanDevice[], t: Omit<TrainShape, 'microBatchesInFlight'>): PlannedStage[] {
  const S = devices.length;
  const L = c.numLayers;
  if (S === 0) throw new PlanError('no ready device to train on: connect a phone or start virtual phones');
  if (S > L) throw new PlanError(`${S} devices but the model has only ${L} layers: use at most ${L} devices`);
  const shapeOf = (s: number, a: number, b: number): StageShape => ({ layerStart: a, layerEnd: b, hasEmbedding: s === 0, hasHead: s === S - 1 });
  const fits = (s: number, a: number, b: number) =>
    stageBytes(c, shapeOf(s, a, b), { ...t, microBatchesInFlight: S - s }) <= devices[s].budgetBytes;

  // best[s][b] = minimal max-cost of placing layers [0, b) on devices 0..s-1 (each stage non-empty).
  const best = Array.from({ length: S + 1 }, () => new Array<number>(L + 1).fill(Infinity));
  const cut = Array.from({ length: S + 1 }, () => new Array<number>(L + 1).fill(-1));
  best[0][0] = 0;
  for (let s = 1; s <= S; s++) {
    for (let b = s; b <= L - (S - s); b++) {
      for (let a = s - 1; a < b; a++) {
        if (best[s - 1][a] === Infinity || !fits(s - 1, a, b)) continue;
        const cost = Math.max(best[s - 1][a], stageCost(c, shapeOf(s - 1, a, b), devices[s - 1].speed));
        if (cost < best[s][b]) {
          best[s][b] = cost;
          cut[s][b] = a;
        }
      }
    }
  }
  if (best[S][L] === Infinity) throw new PlanError(explainNoFit(c, devices, t));

  const stages: PlannedStage[] = [];
  for (let s = S, b = L; s > 0; s--) {
    const a = cut[s][b];
    const shape = shapeOf(s - 1, a, b);
    stages.unshift({ ...shape, serial: devices[s - 1].serial, predictedBytes: stageBytes(c, shape, { ...t, microBatchesInFlight: S - s + 1 }) });
    b = a;
  }
  return stages;
}

function explainNoFit(c: ModelConfig, devices: PlanDevice[], t: Omit<TrainShape, 'microBatchesInFlight'>): string {
  // Report the even split's shortfall per device: the most useful picture of what is missing where.
  const S = devices.length;
  const per = Math.ceil(c.numLayers / S);
  const lines = devices.map((d, s) => {
    const a = Math.min(s * per, c.numLayers - 1);
    const b = Math.min(a + per, c.numLayers);
    const need = stageBytes(c, { layerStart: a, layerEnd: b, hasEmbedding: s === 0, hasHead: s === S - 1 }, { ...t, microBatchesInFlight: S - s });
    const gib = (x: number) => (x / 2 ** 30).toFixed(2);
    return need > d.budgetBytes ? `${d.serial} has ${gib(d.budgetBytes)} GiB for training, its share needs ${gib(need)} GiB` : '';
  }).filter(Boolean);
  return `the model does not fit on these devices: ${lines.join('; ') || 'no contiguous split fits'}. ` +
    'Try a shorter sequence length or micro-batch size, fewer LoRA ranks, or add another phone.';
}
