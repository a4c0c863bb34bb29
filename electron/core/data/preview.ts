// The data step's preview: the first rows rendered as the model will see them, split into trained and context-only
// stretches, with their token ids and counts, plus the whole file's statistics and every bad row. It goes through
// the same reading, tokenizing and cutting as training (load-dataset.ts, prepare-dataset.ts).
import type { TextTokenizer } from '../model/tokenizer.js';
import type { DatasetDetails, PreviewExample, PreviewSegment } from './dataset-contract.js';
import type { EncodedExample } from './encode-examples.js';
import { describeMapping } from './examples.js';
import { loadDataset } from './load-dataset.js';
import { prepareDataset } from './prepare-dataset.js';
import type { DatasetOptions } from '../train/training-data.js';

export interface PreviewOptions {
  dataset: DatasetOptions;
  seqLen: number;
  validationFraction: number;
  seed: number;
  /** Rows to render. */
  examples: number;
}

/** Decodes a..b as the difference of two prefix decodings, so spaces at a seam are not lost or doubled. */
function decodeRange(tok: TextTokenizer, ids: readonly number[], a: number, b: number): string {
  const before = a === 0 ? '' : tok.decode(ids.slice(0, a), { skipSpecial: false });
  const through = tok.decode(ids.slice(0, b), { skipSpecial: false });
  return through.startsWith(before) ? through.slice(before.length) : tok.decode(ids.slice(a, b), { skipSpecial: false });
}

export function previewExample(e: EncodedExample, tok: TextTokenizer, seqLen: number): PreviewExample {
  const shown = Math.min(e.ids.length, seqLen + 1);
  const ids = e.ids.slice(0, shown);
  const trained = Array.from(e.trained.subarray(0, shown));
  const segments: PreviewSegment[] = [];
  for (let a = 0; a < shown; ) {
    let b = a + 1;
    while (b < shown && trained[b] === trained[a]) b++;
    segments.push({ text: decodeRange(tok, ids, a, b), trained: trained[a] === 1 });
    a = b;
  }
  return {
    line: e.line,
    segments,
    ids,
    trained,
    tokens: e.ids.length,
    trainedTokens: trained.reduce((s, x) => s + x, 0),
    truncated: e.ids.length > shown,
  };
}

export async function buildDatasetPreview(path: string, tok: TextTokenizer, modelDir: string, o: PreviewOptions): Promise<DatasetDetails> {
  const { read, encoded, chatTemplate } = await loadDataset(path, tok, modelDir, o.dataset);
  const prepared = prepareDataset(read, encoded, tok.eosTokenId, { seqLen: o.seqLen, validationFraction: o.validationFraction, seed: o.seed, padTokenId: tok.padTokenId ?? 0 });
  const s = prepared.stats;
  const notes: string[] = [];
  if (read.mapping.shape === 'text') {
    notes.push(`Plain text: every token is trained; each row gets EOS and is cut into sequences of ${o.seqLen} tokens (nothing is lost).`);
  } else {
    const what = read.mapping.shape === 'chat' ? `the assistant turns (rendered with ${chatTemplate?.source})` : 'the completion and the EOS after it';
    notes.push(`Loss only on ${what}; the rest is context. One row per sequence, cut from the right at ${o.seqLen} tokens.`);
    if (s.truncatedRows) notes.push(`${s.truncatedRows} of ${s.examples} rows are longer than ${o.seqLen} tokens and lose their end.`);
    if (s.droppedRows) notes.push(`${s.droppedRows} rows have nothing trained left within ${o.seqLen} tokens and are left out (lines ${s.droppedLines.join(', ')}${s.droppedRows > s.droppedLines.length ? ', …' : ''}).`);
  }
  if (read.badRows.length && o.dataset.skipBadRows) notes.push(`${read.badRows.length} bad rows are skipped.`);
  let refused: string | null = null;
  if (read.badRows.length && !o.dataset.skipBadRows) refused = `${read.badRows.length} bad row${read.badRows.length === 1 ? '' : 's'}: training refuses the file until they are fixed or skipped.`;
  else if (read.examples.length < 2) refused = `Only ${read.examples.length} usable row(s); training needs at least 2 (one is held out).`;
  else if (s.droppedRows === read.examples.length) refused = `Every row is cut off before anything trained at ${o.seqLen} tokens; raise the sequence length.`;
  return {
    options: { ...o.dataset, seqLen: o.seqLen },
    format: read.format,
    shape: read.format === 'text' ? 'plain text documents' : describeMapping(read.mapping),
    columns: read.columns,
    seqLen: o.seqLen,
    chatTemplate: chatTemplate?.source ?? null,
    stats: s,
    badRows: read.badRows.map((r) => ({ line: r.line, kind: r.kind, message: r.message })),
    examples: encoded.slice(0, o.examples).map((e) => previewExample(e, tok, o.seqLen)),
    refused,
    notes,
  };
}
