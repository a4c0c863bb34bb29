// Reads a run's dataset file (plain text, JSONL or CSV) into tokenized training and held-out samples with loss
// masks. Refuses a file with bad rows, listing every one by line, unless they may be skipped.
import { loadDataset } from '../data/load-dataset.js';
import { prepareDataset, type PreparedDataset } from '../data/prepare-dataset.js';
import { checkBadRows, type ReadOptions } from '../data/read-dataset.js';
import type { TextTokenizer } from '../model/tokenizer.js';

/** How to read the dataset file; every field is optional (auto-detected, refuse bad rows). */
export interface DatasetOptions extends ReadOptions {
  /** Train on the good rows of a file with bad ones (which are still listed) instead of refusing it. */
  skipBadRows?: boolean;
}

export interface TrainingDataOptions {
  seqLen: number;
  validationFraction: number;
  seed: number;
  /** The model folder, for its chat template when the rows are chats. */
  modelDir: string;
  dataset?: DatasetOptions;
}

export async function loadTrainingData(path: string, tok: TextTokenizer, o: TrainingDataOptions): Promise<PreparedDataset> {
  const { read, encoded } = await loadDataset(path, tok, o.modelDir, o.dataset ?? {});
  checkBadRows(read, o.dataset?.skipBadRows ?? false);
  if (read.examples.length < 2) throw new Error(`${path} holds ${read.examples.length} usable row(s); training needs at least 2 (one is held out)`);
  const data = prepareDataset(read, encoded, tok.eosTokenId, { seqLen: o.seqLen, validationFraction: o.validationFraction, seed: o.seed, padTokenId: tok.padTokenId ?? 0 });
  const s = data.stats;
  if (s.droppedRows === read.examples.length) {
    throw new Error(`${path}: at seq-len ${o.seqLen} every row is cut off before its completion starts (e.g. line ${s.droppedLines[0]}); raise the sequence length or shorten the prompts`);
  }
  return data;
}
