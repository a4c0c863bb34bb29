// CSV datasets: a header row names the columns; every other record becomes a row keyed by those names. A record
// with another number of fields, or on a line that is not valid UTF-8, is a bad row.
import { badRow, type BadRow } from './bad-rows.js';
import { parseCsv } from './csv.js';
import { splitLines, stripBom } from './lines.js';
import type { RawRow } from './jsonl-dataset.js';

export interface CsvRows {
  header: string[];
  /** Records after the header. */
  rows: number;
  objects: RawRow[];
  bad: BadRow[];
}

export function parseCsvDataset(input: Uint8Array, path: string): CsvRows {
  const bytes = stripBom(input, path);
  // Lines are checked one by one so an invalid byte is named by line; the parse itself reads the lossy decoding.
  const badUtf8 = new Set<number>();
  splitLines(bytes).forEach((l, i) => l.text === null && badUtf8.add(i + 1));
  const { records, unclosedQuoteLine } = parseCsv(new TextDecoder('utf-8').decode(bytes));
  const [head, ...body] = records;
  if (!head) throw new Error(`${path}: the CSV file is empty; it needs a header row naming the columns`);
  if (badUtf8.has(head.line)) throw new Error(`${path}: line ${head.line}: the header row is not valid UTF-8`);
  const header = head.fields.map((f) => f.trim());
  const dup = header.find((h, i) => header.indexOf(h) !== i);
  if (dup !== undefined) throw new Error(`${path}: line ${head.line}: the header names column "${dup}" twice`);

  const objects: RawRow[] = [];
  const bad: BadRow[] = [];
  for (const r of body) {
    let invalidLine = 0;
    for (let l = r.line; l <= r.lastLine && !invalidLine; l++) if (badUtf8.has(l)) invalidLine = l;
    if (invalidLine) {
      bad.push(badRow(path, r.line, 'invalid-utf8', invalidLine === r.line ? 'is not valid UTF-8' : `the record continues on line ${invalidLine}, which is not valid UTF-8`));
    } else if (r.fields.length !== header.length) {
      bad.push(badRow(path, r.line, 'column-count', `has ${r.fields.length} field${r.fields.length === 1 ? '' : 's'}, the header has ${header.length} (${header.join(', ')}); quote fields that hold commas`));
    } else {
      objects.push({ line: r.line, value: Object.fromEntries(header.map((h, i) => [h, r.fields[i]!])) });
    }
  }
  if (unclosedQuoteLine !== null) {
    bad.push(badRow(path, unclosedQuoteLine, 'unclosed-quote', 'a quoted field opens here and is never closed (the rest of the file would be one field)'));
  }
  return { header, rows: body.length + (unclosedQuoteLine !== null ? 1 : 0), objects, bad };
}
