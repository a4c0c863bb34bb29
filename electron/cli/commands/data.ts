// `confidant data preview`: how a dataset file will be trained on, before any phone is involved: the detected
// format and shape, every bad row by line, statistics, and the first rows with the trained part marked.
// Also the dataset flags `confidant train` shares (datasetOptionsFromArgs).
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { bundledPaths } from '../../core/paths.js';
import { loadTokenizer } from '../../core/model/tokenizer.js';
import { DATA_FORMATS, type DataFormat } from '../../core/data/dataset-contract.js';
import { buildDatasetPreview } from '../../core/data/preview.js';
import type { DatasetOptions } from '../../core/train/training-data.js';
import { DEFAULT_TRAIN_SETTINGS } from '../../core/train/job.js';
import { UsageError, parseCount } from '../args.js';

/** parseArgs options for reading a dataset, shared with `confidant train`. */
export const DATASET_ARG_OPTIONS = {
  'data-format': { type: 'string' },
  'prompt-column': { type: 'string' },
  'completion-column': { type: 'string' },
  'text-column': { type: 'string' },
  'skip-bad-rows': { type: 'boolean' },
} as const;

export function datasetOptionsFromArgs(values: { 'data-format'?: string; 'prompt-column'?: string; 'completion-column'?: string; 'text-column'?: string; 'skip-bad-rows'?: boolean }): DatasetOptions {
  const format = values['data-format'] ?? 'auto';
  if (!(DATA_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--data-format must be one of ${DATA_FORMATS.join(', ')}, got "${format}"`);
  const { 'prompt-column': promptColumn, 'completion-column': completionColumn, 'text-column': textColumn } = values;
  if ((promptColumn === undefined) !== (completionColumn === undefined)) throw new UsageError('give --prompt-column and --completion-column together');
  if (textColumn !== undefined && promptColumn !== undefined) throw new UsageError('give either --text-column or --prompt-column/--completion-column, not both');
  return { format: format as DataFormat, promptColumn, completionColumn, textColumn, skipBadRows: values['skip-bad-rows'] ?? false };
}

// ANSI: trained text in bold green, context dim; plain markers when stdout is not a terminal.
const paint = (text: string, trained: boolean, tty: boolean): string =>
  tty ? (trained ? `\x1b[1;32m${text}\x1b[0m` : `\x1b[2m${text}\x1b[0m`) : trained ? `[[${text}]]` : text;

export async function dataCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'preview') throw new UsageError(`usage: confidant data preview --data FILE [--model DIR] [--data-format auto|text|jsonl|csv] [--prompt-column C --completion-column C | --text-column C] [--skip-bad-rows] [--seq-len T] [--examples N] [--json]`);
  const { values } = parseArgs({
    args: rest,
    options: { model: { type: 'string' }, data: { type: 'string' }, 'seq-len': { type: 'string' }, examples: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' }, ...DATASET_ARG_OPTIONS },
  });
  if (!values.data) throw new UsageError('--data FILE is required');
  const paths = bundledPaths();
  const modelDir = resolve(values.model ?? paths.modelDir);
  const d = DEFAULT_TRAIN_SETTINGS;
  const tok = await loadTokenizer(modelDir);
  const preview = await buildDatasetPreview(resolve(values.data), tok, modelDir, {
    dataset: datasetOptionsFromArgs(values),
    seqLen: parseCount(values['seq-len'], '--seq-len', d.seqLen, 2),
    validationFraction: d.validationFraction,
    seed: parseCount(values.seed, '--seed', d.seed, 0),
    examples: parseCount(values.examples, '--examples', 3),
  });
  if (values.json) {
    console.log(JSON.stringify(preview));
    return;
  }
  const s = preview.stats;
  const tty = process.stdout.isTTY === true;
  console.log(`format: ${preview.format}, ${preview.shape}${preview.chatTemplate ? `; chat template ${preview.chatTemplate}` : ''}`);
  console.log(`rows ${s.rows}, usable ${s.examples}, bad ${s.badRows}; tokens ${s.tokens}, trained ${s.trainedTokens} at seq-len ${preview.seqLen}; truncated rows ${s.truncatedRows}, dropped ${s.droppedRows}`);
  console.log(`split: ${s.trainExamples} rows / ${s.trainSequences} sequences train, ${s.validationExamples} rows / ${s.validationSequences} sequences held out`);
  for (const n of preview.notes) console.log(n);
  for (const r of preview.badRows) console.log(`bad row: ${r.message}`);
  for (const e of preview.examples) {
    console.log(`\n--- line ${e.line}: ${e.tokens} tokens, ${e.trainedTokens} trained${e.truncated ? ', truncated' : ''} (${tty ? 'trained text in green' : 'trained text in [[ ]]'})`);
    console.log(e.segments.map((seg) => paint(seg.text, seg.trained, tty)).join(''));
    console.log(`ids: ${e.ids.map((id, i) => (e.trained[i] ? `*${id}` : String(id))).join(' ')}`);
  }
  if (preview.refused) {
    console.error(`\ntraining would refuse this file: ${preview.refused}`);
    process.exitCode = 1;
  }
}
