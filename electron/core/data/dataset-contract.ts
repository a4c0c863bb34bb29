// The dataset part of the UI contract: the options a user sets for reading a dataset file (zod schemas, checked
// at the API boundary) and what the preview returns. Node- and DOM-free, like api/contract.ts, which uses these.
import { z } from 'zod';

export const DATA_FORMATS = ['auto', 'text', 'jsonl', 'csv'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

const column = (what: string) => z.string({ error: `${what} must be a string` }).trim().min(1, { error: `${what} is empty: enter a column name or leave it out` });

/** How to read a dataset file. Every field is optional: detected format and shape, bad rows refused. */
export const datasetOptionsSchema = z.strictObject({
  format: z.enum(DATA_FORMATS, { error: `format must be one of ${DATA_FORMATS.join(', ')}` }).optional(),
  promptColumn: column('promptColumn').optional(),
  completionColumn: column('completionColumn').optional(),
  textColumn: column('textColumn').optional(),
  skipBadRows: z.boolean({ error: 'skipBadRows must be true or false' }).optional(),
  /** Tokens per training sequence (prompt/completion rows longer than this are cut from the right). */
  seqLen: z.int({ error: 'seqLen must be a whole number' }).min(2, { error: 'seqLen must be at least 2' }).max(8192, { error: 'seqLen must be at most 8192' }).optional(),
});
export type DatasetOptionsParams = z.output<typeof datasetOptionsSchema>;

export const previewDatasetParams = z.strictObject({
  path: z.string({ error: 'dataset path must be a string' }).trim().min(1, { error: 'dataset path is empty: enter a path' }),
  /** The model whose tokenizer and chat template are used (default: the bundled model). */
  modelPath: z.string({ error: 'model path must be a string' }).trim().min(1, { error: 'model path is empty: enter a path' }).optional(),
  options: datasetOptionsSchema.optional(),
  /** How many rows to render (default 5). */
  examples: z.int({ error: 'examples must be a whole number' }).min(1, { error: 'examples must be at least 1' }).max(50, { error: 'examples must be at most 50' }).optional(),
});

export interface DatasetStats {
  rows: number;
  examples: number;
  badRows: number;
  /** Tokens of the usable rows as tokenized (BOS included; the EOS plain text gets when chunked is not). */
  tokens: number;
  /** Targets the loss counts, over both sides, after cutting to seqLen. */
  trainedTokens: number;
  /** Rows longer than seqLen (prompt/completion and chat only; plain text is chunked, nothing is cut). */
  truncatedRows: number;
  /** Rows cut so short that nothing trained was left; they give no sample. The first of their lines. */
  droppedRows: number;
  droppedLines: number[];
  trainExamples: number;
  validationExamples: number;
  trainSequences: number;
  validationSequences: number;
}

/** A stretch of a rendered row: trained (the loss counts its tokens) or context only (prompt, user, system). */
export interface PreviewSegment {
  text: string;
  trained: boolean;
}

export interface PreviewExample {
  /** 1-based line where the row starts. */
  line: number;
  /** The first sequence the model sees for this row (at most seqLen + 1 tokens), split where training starts/stops. */
  segments: PreviewSegment[];
  ids: number[];
  /** Per id: 1 when predicting it is trained. */
  trained: number[];
  /** All tokens of the row, before cutting to seqLen. */
  tokens: number;
  trainedTokens: number;
  truncated: boolean;
}

export interface DatasetBadRow {
  line: number;
  kind: string;
  message: string;
}

export interface DatasetDetails {
  /** The options this preview was made with (seqLen included): pass them to startTraining to train on what was shown. */
  options: DatasetOptionsParams;
  format: 'text' | 'jsonl' | 'csv';
  /** How rows are read, e.g. "prompt/completion (question, answer)". */
  shape: string;
  /** JSONL keys or CSV header columns found (empty for plain text). */
  columns: string[];
  seqLen: number;
  /** Where the chat template came from, when the rows are chats. */
  chatTemplate: string | null;
  stats: DatasetStats;
  /** Every bad row, by line. */
  badRows: DatasetBadRow[];
  examples: PreviewExample[];
  /** Why training would refuse this file with these options, or null. */
  refused: string | null;
  /** How the rows become training sequences, in words. */
  notes: string[];
}
