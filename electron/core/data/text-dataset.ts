// Reads a plain-text training file into documents: stories separated by `<|endoftext|>` lines (TinyStories style),
// or, when the file has no such line, one document per blank-line-separated block. No tokenisation here.
import { readDatasetFile, splitLines, stripBom, type Line } from './lines.js';

export const DOC_SEPARATOR = '<|endoftext|>';

export interface TextDocument {
  text: string;
  /** 1-based line numbers of the document's first and last non-blank line. */
  firstLine: number;
  lastLine: number;
}

export type DatasetIssueKind = 'invalid-utf8' | 'nul-bytes' | 'empty';

export interface DatasetIssue {
  kind: DatasetIssueKind;
  /** 1-based line range the issue covers. */
  line: number;
  lastLine: number;
  message: string;
}

export interface TextDataset {
  path: string;
  format: 'separator' | 'blank-lines';
  bytes: number;
  /** Valid, non-empty documents in file order; documents with issues are left out (and listed in issues). */
  documents: TextDocument[];
  issues: DatasetIssue[];
}

function rangeText(first: number, last: number): string {
  return first === last ? `line ${first}` : `lines ${first}-${last}`;
}

/** Parses file contents; `path` only names the file in messages. */
export function parseTextDataset(input: Uint8Array, path: string): TextDataset {
  const lines = splitLines(stripBom(input, path));
  const isSeparator = (l: Line): boolean => l.text !== null && l.text.trim() === DOC_SEPARATOR;
  const isBlank = (l: Line): boolean => l.text !== null && l.text.trim() === '';
  const format: TextDataset['format'] = lines.some(isSeparator) ? 'separator' : 'blank-lines';

  // Group line indices (0-based) into raw blocks.
  const blocks: { first: number; last: number; endsAtSeparator: boolean }[] = [];
  let blockStart = 0;
  for (let i = 0; i <= lines.length; i++) {
    const atEnd = i === lines.length;
    const boundary = atEnd || (format === 'separator' ? isSeparator(lines[i]!) : isBlank(lines[i]!));
    if (!boundary) continue;
    blocks.push({ first: blockStart, last: i - 1, endsAtSeparator: !atEnd && format === 'separator' });
    blockStart = i + 1;
  }

  const documents: TextDocument[] = [];
  const issues: DatasetIssue[] = [];
  for (const b of blocks) {
    let first = b.first;
    let last = b.last;
    while (first <= last && isBlank(lines[first]!)) first++;
    while (last >= first && isBlank(lines[last]!)) last--;
    if (first > last) {
      // Blank-line mode: runs of blank lines are just separators. Separator mode: an entry with no text.
      // Text after the last separator that is blank is the normal end of the file, not an entry.
      if (format === 'separator' && b.endsAtSeparator) {
        const sepLine = b.last + 2; // 1-based line of the separator that closes this entry
        issues.push({
          kind: 'empty',
          line: b.first + 1,
          lastLine: sepLine,
          message: `${path}: ${rangeText(b.first + 1, sepLine)}: empty entry (nothing between two ${DOC_SEPARATOR} separators)`,
        });
      }
      continue;
    }
    const bad = lines.slice(first, last + 1).findIndex((l) => l.text === null || l.nul);
    if (bad >= 0) {
      const lineNo = first + bad + 1;
      const l = lines[first + bad]!;
      const kind: DatasetIssueKind = l.text === null ? 'invalid-utf8' : 'nul-bytes';
      const what = kind === 'invalid-utf8' ? 'is not valid UTF-8' : 'contains NUL bytes (a binary file?)';
      issues.push({
        kind,
        line: first + 1,
        lastLine: last + 1,
        message: `${path}: line ${lineNo} ${what}; the entry at ${rangeText(first + 1, last + 1)} is left out`,
      });
      continue;
    }
    const text = lines.slice(first, last + 1).map((l) => l.text!.trimEnd()).join('\n');
    documents.push({ text, firstLine: first + 1, lastLine: last + 1 });
  }
  if (documents.length === 0) {
    const why = issues.length > 0 ? `; ${issues.length} entries have problems, e.g. ${issues[0]!.message}` : '';
    throw new Error(`${path}: no usable text (expected plain UTF-8 text, documents separated by ${DOC_SEPARATOR} lines or blank lines)${why}`);
  }
  return { path, format, bytes: input.length, documents, issues };
}

export async function readTextDataset(path: string): Promise<TextDataset> {
  return parseTextDataset(await readDatasetFile(path), path);
}

/** One line per issue (at most `max`), for logs and the UI. */
export function formatDatasetIssues(ds: TextDataset, max = 10): string {
  const shown = ds.issues.slice(0, max).map((i) => i.message);
  if (ds.issues.length > max) shown.push(`... and ${ds.issues.length - max} more`);
  return shown.join('\n');
}
