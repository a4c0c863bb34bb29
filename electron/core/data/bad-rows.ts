// A row of a dataset file that cannot be trained on, named by its 1-based line so the user can open the file there.
// Readers collect every bad row (not just the first); the caller decides to refuse the file or skip them.

export type BadRowKind =
  | 'invalid-utf8'
  | 'nul-bytes'
  | 'invalid-json'
  | 'not-an-object'
  | 'missing-field'
  | 'wrong-type'
  | 'empty-field'
  | 'unknown-role'
  | 'no-assistant'
  | 'column-count'
  | 'unclosed-quote'
  | 'template-error';

export interface BadRow {
  kind: BadRowKind;
  /** 1-based line where the row starts (a CSV record or a text entry may span several lines). */
  line: number;
  /** Full sentence naming the file and the line, e.g. "data.jsonl: line 4: missing field 'completion'". */
  message: string;
}

export function badRow(path: string, line: number, kind: BadRowKind, what: string): BadRow {
  return { kind, line, message: `${path}: line ${line}: ${what}` };
}

/** Every bad row, one per line (for errors and logs). */
export function formatBadRows(rows: readonly BadRow[]): string {
  return rows.map((r) => r.message).join('\n');
}
