// Mean next-token loss of samples (TrainingSample arrays: tokens, targets, loss mask) through the full-sequence
// graph (llama-graph.ts buildModelGraph, no cache), on the thread that owns the session. Cross-entropy in f64 from
// the logits, as the agents' loss: sum over positions of mask * -log softmax(logits)[target], over sum of mask.
import ort from 'onnxruntime-node';
import { MODEL_INPUT, MODEL_OUTPUT } from './llama-graph.js';

export interface LossSample {
  tokens: ArrayLike<number>;
  targets: ArrayLike<number>;
  mask: ArrayLike<number>;
}

export interface LossSums {
  /** Sum of mask-weighted token losses and of the mask: the mean loss is lossSum / weightSum. */
  lossSum: number;
  weightSum: number;
}

/** -log softmax(row)[target] in f64. */
export function tokenLoss(logits: Float32Array, offset: number, vocab: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[offset + v]!);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[offset + v]! - max);
  return Math.log(sum) + max - logits[offset + target]!;
}

/** Runs the samples in batches of up to `batchSize` rows of equal length and sums their losses. */
export async function datasetLoss(session: ort.InferenceSession, samples: readonly LossSample[], vocab: number, batchSize: number): Promise<LossSums> {
  const sums: LossSums = { lossSum: 0, weightSum: 0 };
  for (let i = 0; i < samples.length; ) {
    const T = samples[i]!.tokens.length;
    const batch: LossSample[] = [];
    while (i < samples.length && batch.length < batchSize && samples[i]!.tokens.length === T) batch.push(samples[i++]!);
    const ids = new BigInt64Array(batch.length * T);
    batch.forEach((s, b) => {
      if (s.targets.length !== T || s.mask.length !== T) throw new Error(`a sample has ${T} tokens but ${s.targets.length} targets and ${s.mask.length} mask values`);
      for (let t = 0; t < T; t++) ids[b * T + t] = BigInt(s.tokens[t]!);
    });
    const out = await session.run({ [MODEL_INPUT]: new ort.Tensor('int64', ids, [batch.length, T]) });
    const logits = out[MODEL_OUTPUT]!.data as Float32Array;
    batch.forEach((s, b) => {
      for (let t = 0; t < T; t++) {
        const m = s.mask[t]!;
        if (m === 0) continue;
        const target = s.targets[t]!;
        if (!Number.isInteger(target) || target < 0 || target >= vocab) throw new Error(`target id ${target} is outside the model's ${vocab}-token vocabulary`);
        sums.lossSum += m * tokenLoss(logits, (b * T + t) * vocab, vocab, target);
        sums.weightSum += m;
      }
    });
  }
  return sums;
}
