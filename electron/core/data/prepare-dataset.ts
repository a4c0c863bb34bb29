// From a read dataset to training and held-out samples plus the numbers a user checks before training: a seeded
// split by row of the tokenized rows, plain text chunked as before (every target once), other rows cut to
// seqLen one per sample. Preview and training both use it, so what the preview counts is what training gets.
import type { DatasetStats } from './dataset-contract.js';
import type { EncodedExample } from './encode-examples.js';
import type { DatasetRead } from './read-dataset.js';
import { buildSamples, splitTrainValidation, type PreparedData, type TrainingSample } from './samples.js';
import { supervisedSample } from './supervised-samples.js';

export type { DatasetStats };

export interface PreparedDataset extends PreparedData {
  stats: DatasetStats;
}

export interface PrepareOptions {
  seqLen: number;
  validationFraction: number;
  seed: number;
  padTokenId: number;
}

const MAX_LINES_LISTED = 20;

export function prepareDataset(ds: DatasetRead, encoded: readonly EncodedExample[], eosTokenId: number | null, o: PrepareOptions): PreparedDataset {
  if (!Number.isInteger(o.seqLen) || o.seqLen < 1) throw new Error(`seqLen must be a positive integer, got ${o.seqLen}`);
  const split = splitTrainValidation(encoded, o);
  let truncatedRows = 0;
  const droppedLines: number[] = [];
  const samplesOf = (rows: EncodedExample[]): TrainingSample[] => {
    if (ds.mapping.shape === 'text') return buildSamples(rows.map((r) => r.ids), { seqLen: o.seqLen, padTokenId: o.padTokenId, endTokenId: eosTokenId });
    const out: TrainingSample[] = [];
    rows.forEach((r, i) => {
      const s = supervisedSample(r, i, o.seqLen, o.padTokenId);
      if (s.truncated) truncatedRows++;
      if (s.sample) out.push(s.sample);
      else droppedLines.push(r.line);
    });
    return out;
  };
  const train = samplesOf(split.train);
  const validation = samplesOf(split.validation);
  const targets = (s: TrainingSample[]) => s.reduce((sum, x) => sum + x.mask.reduce((a, b) => a + b, 0), 0);
  const trainTargets = targets(train);
  const validationTargets = targets(validation);
  droppedLines.sort((a, b) => a - b);
  return {
    train,
    validation,
    trainDocs: split.train.length,
    validationDocs: split.validation.length,
    trainTargets,
    validationTargets,
    stats: {
      rows: ds.rows,
      examples: ds.examples.length,
      badRows: ds.badRows.length,
      tokens: encoded.reduce((sum, e) => sum + e.ids.length, 0),
      trainedTokens: trainTargets + validationTargets,
      truncatedRows,
      droppedRows: droppedLines.length,
      droppedLines: droppedLines.slice(0, MAX_LINES_LISTED),
      trainExamples: split.train.length,
      validationExamples: split.validation.length,
      trainSequences: train.length,
      validationSequences: validation.length,
    },
  };
}
