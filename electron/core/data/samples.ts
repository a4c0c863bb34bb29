// Turns documents into fixed-length next-token training samples, a seeded train/validation split by document,
// a seeded shuffle per epoch, and batch collation into the flat arrays FORWARD sends. Knows nothing of devices.
import { deriveSeed, mulberry32, permutation, shuffleInPlace } from './rng.js';

/** One training row: position t predicts targets[t] from tokens[0..t]; mask[t] is the loss weight (0 = padding). */
export interface TrainingSample {
  tokens: Int32Array; // (T)
  targets: Int32Array; // (T)
  mask: Float32Array; // (T)
  /** Index of the source document in the list given to buildSamples, and of this chunk within it. */
  docIndex: number;
  chunkIndex: number;
}

export interface SampleOptions {
  seqLen: number;
  /** Id written into padded token/target positions (their mask is 0, so it never affects the loss). Default 0. */
  padTokenId?: number;
  /** Appended to every document so the model learns where a text ends (e.g. EOS; stories260K uses BOS). Default none. */
  endTokenId?: number | null;
}

/**
 * Builds samples from tokenized documents (each already starting with BOS if the model wants one).
 * A document of n tokens has n-1 (input, target) pairs; they are cut into consecutive chunks of seqLen pairs,
 * so every target is trained exactly once; the last chunk is padded with mask 0.
 */
export function buildSamples(docs: readonly (readonly number[])[], opts: SampleOptions): TrainingSample[] {
  const T = opts.seqLen;
  if (!Number.isInteger(T) || T < 1) throw new Error(`seqLen must be a positive integer, got ${T}`);
  const pad = opts.padTokenId ?? 0;
  const samples: TrainingSample[] = [];
  docs.forEach((doc, docIndex) => {
    const seq = opts.endTokenId === undefined || opts.endTokenId === null ? doc : [...doc, opts.endTokenId];
    const pairs = seq.length - 1;
    for (let start = 0, chunk = 0; start < pairs; start += T, chunk++) {
      const n = Math.min(T, pairs - start);
      const tokens = new Int32Array(T).fill(pad);
      const targets = new Int32Array(T).fill(pad);
      const mask = new Float32Array(T);
      for (let t = 0; t < n; t++) {
        tokens[t] = seq[start + t]!;
        targets[t] = seq[start + t + 1]!;
        mask[t] = 1;
      }
      samples.push({ tokens, targets, mask, docIndex, chunkIndex: chunk });
    }
  });
  return samples;
}

export interface SplitOptions {
  /** Fraction of items held out for validation, in [0, 1). */
  validationFraction: number;
  seed: number;
}

/**
 * Seeded split of items (documents, so chunks of one text never land on both sides). With a fraction > 0 and at
 * least two items, validation gets at least one and train keeps at least one. Both keep the original order.
 */
export function splitTrainValidation<T>(items: readonly T[], opts: SplitOptions): { train: T[]; validation: T[]; validationIndices: number[] } {
  const f = opts.validationFraction;
  if (!(f >= 0 && f < 1)) throw new Error(`validationFraction must be in [0, 1), got ${f}`);
  let nVal = Math.round(items.length * f);
  if (f > 0 && items.length >= 2) nVal = Math.min(Math.max(nVal, 1), items.length - 1);
  const order = permutation(items.length, opts.seed, 0x5b117);
  const validationIndices = order.slice(0, nVal).sort((a, b) => a - b);
  const isVal = new Set(validationIndices);
  return {
    train: items.filter((_, i) => !isVal.has(i)),
    validation: validationIndices.map((i) => items[i]!),
    validationIndices,
  };
}

/** The order in which to visit `count` samples in epoch `epoch` (0-based): a pure function of (seed, epoch). */
export function epochOrder(count: number, seed: number, epoch: number): number[] {
  return permutation(count, seed, 0xe90c, epoch);
}

/** Seeded shuffle of a copy of `items` (for callers that want items rather than indices). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  return shuffleInPlace([...items], mulberry32(deriveSeed(seed)));
}

export interface Batch {
  batchSize: number;
  seqLen: number;
  tokens: Int32Array; // (B, T)
  targets: Int32Array; // (B, T)
  mask: Float32Array; // (B, T)
  /** Σ mask: the number of real targets. */
  maskSum: number;
}

/** Packs samples row by row into the flat C-order arrays a FORWARD request carries. */
export function collateBatch(samples: readonly TrainingSample[]): Batch {
  if (samples.length === 0) throw new Error('cannot build an empty batch');
  const T = samples[0]!.tokens.length;
  const B = samples.length;
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const mask = new Float32Array(B * T);
  let maskSum = 0;
  samples.forEach((s, b) => {
    if (s.tokens.length !== T) throw new Error(`sample ${b} has seqLen ${s.tokens.length}, batch has ${T}`);
    tokens.set(s.tokens, b * T);
    targets.set(s.targets, b * T);
    mask.set(s.mask, b * T);
    for (const m of s.mask) maskSum += m;
  });
  return { batchSize: B, seqLen: T, tokens, targets, mask, maskSum };
}

export interface PreparedData {
  train: TrainingSample[];
  validation: TrainingSample[];
  /** Document counts on each side and token counts (real targets). */
  trainDocs: number;
  validationDocs: number;
  trainTargets: number;
  validationTargets: number;
}

/**
 * Tokenizes documents (with BOS), splits them by document, and builds samples for both sides.
 * `encode` is TextTokenizer.encode (passed in so this file does not depend on the tokenizer library).
 */
export function prepareSamples(
  texts: readonly string[],
  encode: (text: string, opts: { addBos: boolean }) => number[],
  opts: SampleOptions & SplitOptions,
): PreparedData {
  const split = splitTrainValidation(texts, opts);
  const tok = (docs: string[]): number[][] => docs.map((t) => encode(t, { addBos: true }));
  const train = buildSamples(tok(split.train), opts);
  const validation = buildSamples(tok(split.validation), opts);
  const count = (s: TrainingSample[]): number => s.reduce((sum, x) => sum + x.mask.reduce((a, b) => a + b, 0), 0);
  return {
    train,
    validation,
    trainDocs: split.train.length,
    validationDocs: split.validation.length,
    trainTargets: count(train),
    validationTargets: count(validation),
  };
}
