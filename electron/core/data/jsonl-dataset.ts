// JSON Lines: one JSON object per line. Blank lines are allowed (and skipped); every other line that is not valid
// UTF-8, not valid JSON or not an object is a bad row.
import { badRow, type BadRow } from './bad-rows.js';
import { splitLines, stripBom } from './lines.js';

export interface RawRow {
  line: number;
  value: Record<string, unknown>;
}

export interface JsonlRows {
  /** Non-blank lines. */
  rows: number;
  objects: RawRow[];
  bad: BadRow[];
}

export function parseJsonl(input: Uint8Array, path: string): JsonlRows {
  const lines = splitLines(stripBom(input, path));
  const objects: RawRow[] = [];
  const bad: BadRow[] = [];
  let rows = 0;
  lines.forEach((l, i) => {
    const line = i + 1;
    if (l.text !== null && l.text.trim() === '') return;
    rows++;
    if (l.text === null) return bad.push(badRow(path, line, 'invalid-utf8', 'is not valid UTF-8'));
    let value: unknown;
    try {
      value = JSON.parse(l.text);
    } catch (err) {
      return bad.push(badRow(path, line, 'invalid-json', `is not valid JSON (${(err as Error).message})`));
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return bad.push(badRow(path, line, 'not-an-object', `must be a JSON object {...}, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value).slice(0, 40)}`));
    }
    objects.push({ line, value: value as Record<string, unknown> });
  });
  return { rows, objects, bad };
}
