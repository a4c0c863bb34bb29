// One training sample per prompt/completion or chat row: its ids cut to seqLen (next-token) pairs from the right
// and padded, with the loss mask taken from the row's trained ids. Rows are not packed together: a sample never
// attends across two unrelated rows, at the cost of padding. A row whose trained part lies wholly beyond seqLen
// gives no sample (it is counted as dropped, so the user can raise seqLen).
import type { EncodedExample } from './encode-examples.js';
import type { TrainingSample } from './samples.js';

export interface SupervisedSample {
  /** null: nothing trained is left within seqLen. */
  sample: TrainingSample | null;
  /** The row had more than seqLen + 1 ids, so its end was cut off. */
  truncated: boolean;
}

export function supervisedSample(e: EncodedExample, docIndex: number, seqLen: number, padTokenId: number): SupervisedSample {
  const n = Math.min(seqLen, e.ids.length - 1);
  const truncated = e.ids.length - 1 > seqLen;
  const tokens = new Int32Array(seqLen).fill(padTokenId);
  const targets = new Int32Array(seqLen).fill(padTokenId);
  const mask = new Float32Array(seqLen);
  let trained = 0;
  for (let t = 0; t < n; t++) {
    tokens[t] = e.ids[t]!;
    targets[t] = e.ids[t + 1]!;
    mask[t] = e.trained[t + 1]!;
    trained += mask[t]!;
  }
  return { sample: trained > 0 ? { tokens, targets, mask, docIndex, chunkIndex: 0 } : null, truncated };
}
