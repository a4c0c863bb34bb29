// Reads a dataset file of any supported format into Examples plus every bad row: plain text (documents), JSONL
// and CSV (rows whose shape is detected per file or given by column names). No tokenisation here.
import { readDatasetFile } from './lines.js';
import { extname } from 'node:path';
import { DATA_FORMATS, type DataFormat } from './dataset-contract.js';
import { formatBadRows, type BadRow } from './bad-rows.js';
import { parseCsvDataset } from './csv-dataset.js';
import { describeMapping, detectMapping, KNOWN_MAPPINGS, toExample, type Example, type FieldMapping } from './examples.js';
import { parseJsonl, type RawRow } from './jsonl-dataset.js';
import { parseTextDataset } from './text-dataset.js';

export { DATA_FORMATS, type DataFormat };
export type FileFormat = Exclude<DataFormat, 'auto'>;

export interface ReadOptions {
  /** File format; 'auto' (default) goes by the extension (.jsonl/.json, .csv, else text) and, failing that, the content. */
  format?: DataFormat;
  /** JSONL keys / CSV columns: give prompt and completion together, or text alone; default: detected. */
  promptColumn?: string;
  completionColumn?: string;
  textColumn?: string;
}

export interface DatasetRead {
  path: string;
  format: FileFormat;
  /** How rows were read (plain text files: text). */
  mapping: FieldMapping;
  /** The keys (JSONL, union over rows) or header columns (CSV) found; empty for plain text. */
  columns: string[];
  /** Rows (JSONL non-blank lines, CSV records, text documents and bad entries). */
  rows: number;
  /** Usable rows in file order. */
  examples: Example[];
  /** Every row that cannot be used, by line. */
  badRows: BadRow[];
}

function detectFormat(path: string, bytes: Uint8Array): FileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.json' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.txt' || ext === '.md') return 'text';
  // Unknown extension: a file whose first non-blank byte opens an object is JSON Lines.
  const first = bytes.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0xef && b !== 0xbb && b !== 0xbf);
  return first === 0x7b ? 'jsonl' : 'text';
}

/** The mapping the options ask for, or null to detect one. */
function explicitMapping(o: ReadOptions): FieldMapping | null {
  const { promptColumn: p, completionColumn: c, textColumn: t } = o;
  if (t !== undefined && (p !== undefined || c !== undefined)) throw new Error('give either a text column or prompt and completion columns, not both');
  if ((p === undefined) !== (c === undefined)) throw new Error('give the prompt column and the completion column together');
  if (t !== undefined) return { shape: 'text', text: t };
  if (p !== undefined && c !== undefined) return { shape: 'prompt-completion', prompt: p, completion: c };
  return null;
}

function rowsToExamples(path: string, format: 'jsonl' | 'csv', objects: RawRow[], columns: string[], o: ReadOptions): { mapping: FieldMapping; examples: Example[]; bad: BadRow[] } {
  const explicit = explicitMapping(o);
  if (explicit && format === 'csv') {
    const missing = Object.values(explicit).slice(1).filter((col) => !columns.includes(col));
    if (missing.length) throw new Error(`${path}: no column ${missing.map((m) => `"${m}"`).join(', ')}; the header has ${columns.join(', ')}`);
  }
  // CSV cells are strings, so a chat (a list of messages) cannot be one.
  const candidates = format === 'csv' ? KNOWN_MAPPINGS.filter((m) => m.shape !== 'chat') : KNOWN_MAPPINGS;
  const mapping = explicit ?? detectMapping(objects.map((r) => Object.keys(r.value)), candidates);
  if (!mapping) {
    const known = candidates.map(describeMapping).join('; ');
    throw new Error(`${path}: no row has a known shape (found ${format === 'csv' ? 'columns' : 'keys'} ${columns.join(', ') || 'none'}); expected ${known}, or name the prompt and completion columns (or the text column)`);
  }
  const examples: Example[] = [];
  const bad: BadRow[] = [];
  for (const r of objects) {
    const e = toExample(r.value, mapping, r.line, path);
    if ('message' in e) bad.push(e);
    else examples.push(e);
  }
  return { mapping, examples, bad };
}

/** Parses file contents; `path` names the file in messages and picks the format when it is 'auto'. */
export function parseDataset(bytes: Uint8Array, path: string, o: ReadOptions = {}): DatasetRead {
  const format = !o.format || o.format === 'auto' ? detectFormat(path, bytes) : o.format;
  if (format === 'text') {
    if (explicitMapping(o)) throw new Error(`${path}: column names apply to JSONL and CSV files; this one is read as plain text`);
    const ds = parseTextDataset(bytes, path);
    return {
      path,
      format,
      mapping: { shape: 'text', text: '' },
      columns: [],
      rows: ds.documents.length + ds.issues.length,
      examples: ds.documents.map((d) => ({ kind: 'text', line: d.firstLine, text: d.text })),
      badRows: ds.issues.map((i) => ({ kind: i.kind === 'empty' ? 'empty-field' : i.kind, line: i.line, message: i.message })),
    };
  }
  let rows: number, objects: RawRow[], bad: BadRow[], columns: string[];
  if (format === 'jsonl') {
    ({ rows, objects, bad } = parseJsonl(bytes, path));
    columns = [...new Set(objects.flatMap((r) => Object.keys(r.value)))];
  } else {
    let header: string[];
    ({ header, rows, objects, bad } = parseCsvDataset(bytes, path));
    columns = header;
  }
  const converted = rowsToExamples(path, format, objects, columns, o);
  const badRows = [...bad, ...converted.bad].sort((a, b) => a.line - b.line);
  return { path, format, mapping: converted.mapping, columns, rows, examples: converted.examples, badRows };
}

export async function readDataset(path: string, o: ReadOptions = {}): Promise<DatasetRead> {
  return parseDataset(await readDatasetFile(path), path, o);
}

/** Refuses a file with bad rows unless they may be skipped; the error lists every bad row. */
export function checkBadRows(ds: DatasetRead, skipBadRows: boolean): void {
  if (ds.badRows.length === 0 || skipBadRows) return;
  const n = ds.badRows.length;
  throw new Error(`${ds.path} has ${n} bad row${n === 1 ? '' : 's'} (fix them, or skip them with --skip-bad-rows / "Skip bad rows"):\n${formatBadRows(ds.badRows)}`);
}
