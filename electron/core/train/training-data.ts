// Reads a run's dataset file into tokenized training and held-out samples (plain-text stories for now; JSONL/CSV
// readers come with the data step). Refuses a file with bad entries and names their lines.
import { formatDatasetIssues, readTextDataset } from '../data/text-dataset.js';
import { prepareSamples, type PreparedData } from '../data/samples.js';
import type { TextTokenizer } from '../model/tokenizer.js';

export async function loadTrainingData(path: string, tok: TextTokenizer, o: { seqLen: number; validationFraction: number; seed: number }): Promise<PreparedData> {
  const ds = await readTextDataset(path);
  if (ds.issues.length > 0) throw new Error(`${path} has bad entries:\n${formatDatasetIssues(ds)}`);
  if (ds.documents.length < 2) throw new Error(`${path} holds ${ds.documents.length} document(s); training needs at least 2 (one is held out)`);
  return prepareSamples(ds.documents.map((d) => d.text), (t, e) => tok.encode(t, e), {
    seqLen: o.seqLen,
    validationFraction: o.validationFraction,
    seed: o.seed,
    padTokenId: tok.padTokenId ?? 0,
    endTokenId: tok.eosTokenId,
  });
}
