// Tests the dataset readers (JSONL, CSV, format and shape detection) on the public-data fixtures and on hand-written
// bad files: every bad row is reported with its line, bad rows refuse the file unless skipped, CSV quoting agrees
// with Python's csv module. No tokenisation here (data-masks.test.ts does that).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkBadRows, parseDataset, readDataset } from '../../electron/core/data/read-dataset.js';
import { parseCsv } from '../../electron/core/data/csv.js';
import { alpacaPrompt } from '../../electron/core/data/examples.js';
import { findRepoRoot } from '../../electron/core/paths.js';
import { needTool } from '../support/tools.js';

const FIX = join(findRepoRoot(), 'test', 'fixtures', 'data');
const jsonLines = async (p: string) => (await readFile(p, 'utf8')).split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
const enc = (s: string) => Buffer.from(s, 'utf8');

test('shapes are detected per file: Dolly, Dolly-as-Alpaca, GSM8K, flattened Self-Instruct, chat', async () => {
  const cases: [string, string, string[]][] = [
    ['dolly/dolly_151_head.jsonl', 'instruction', ['instruction', 'context', 'response']],
    ['dolly/dolly_151_alpaca_format_head.jsonl', 'prompt-completion', ['prompt', 'answer']],
    ['gsm8k/train_head.jsonl', 'prompt-completion', ['question', 'answer']],
    ['self-instruct/seed_tasks_alpaca.jsonl', 'instruction', ['instruction', 'input', 'output']],
    ['chat.jsonl', 'chat', ['messages']],
  ];
  for (const [file, shape, fields] of cases) {
    const ds = await readDataset(join(FIX, file));
    assert.equal(ds.format, 'jsonl', file);
    assert.equal(ds.mapping.shape, shape, file);
    assert.deepEqual(Object.values(ds.mapping).slice(1), fields, file);
    assert.deepEqual(ds.badRows, [], file);
    assert.equal(ds.examples.length, ds.rows, file);
  }
});

test('rows become the text the model sees: prompt, newline seam, completion; Alpaca prompt for instructions', async () => {
  const gsm = await readDataset(join(FIX, 'gsm8k/train_head.jsonl'));
  const raw = await jsonLines(join(FIX, 'gsm8k/train_head.jsonl'));
  assert.equal(gsm.examples.length, 30);
  gsm.examples.forEach((e, i) => {
    assert.equal(e.kind, 'prompt-completion');
    assert.equal(e.line, i + 1);
    if (e.kind === 'prompt-completion') assert.deepEqual([e.prompt, e.completion], [`${raw[i]!.question}\n`, raw[i]!.answer]);
  });
  // Dolly's Alpaca export and Dolly's own fields render to the same prompt (the export was made with that template).
  const dolly = await readDataset(join(FIX, 'dolly/dolly_151_head.jsonl'));
  const asFound = await jsonLines(join(FIX, 'dolly/dolly_151_alpaca_format_head.jsonl'));
  dolly.examples.forEach((e, i) => {
    assert.ok(e.kind === 'prompt-completion');
    assert.equal(e.prompt.trimEnd(), (asFound[i]!.prompt as string).trimEnd(), `line ${i + 1}`);
    assert.equal(`${e.completion}###eos_token###`, asFound[i]!.answer, `line ${i + 1}`);
  });
  // Self-Instruct flattened: each task's first instance, checked against the tasks as found.
  const si = await readDataset(join(FIX, 'self-instruct/seed_tasks_alpaca.jsonl'));
  const tasks = await jsonLines(join(FIX, 'self-instruct/seed_tasks_head.jsonl'));
  si.examples.forEach((e, i) => {
    const inst = (tasks[i]!.instances as { input: string; output: string }[])[0]!;
    assert.ok(e.kind === 'prompt-completion');
    assert.deepEqual([e.prompt, e.completion], [alpacaPrompt(tasks[i]!.instruction as string, inst.input), inst.output]);
  });
});

test('bad JSONL: every bad row named by its line; refused by default, skipped on request', async () => {
  const path = join(FIX, 'bad/bad.jsonl');
  const ds = await readDataset(path);
  assert.deepEqual(ds.badRows.map((r) => [r.line, r.kind]), [
    [2, 'invalid-json'],
    [3, 'missing-field'],
    [4, 'wrong-type'],
    [6, 'empty-field'],
    [7, 'not-an-object'],
    [8, 'invalid-utf8'],
  ]);
  for (const r of ds.badRows) assert.ok(r.message.startsWith(`${path}: line ${r.line}: `), r.message);
  assert.match(ds.badRows[1]!.message, /missing field 'completion'/);
  assert.match(ds.badRows[2]!.message, /field 'completion' must be a string, got a number/);
  assert.deepEqual(ds.examples.map((e) => e.line), [1, 9]);
  assert.equal(ds.rows, 8, 'the blank line 5 is not a row');
  assert.throws(() => checkBadRows(ds, false), (e: Error) => {
    assert.match(e.message, /has 6 bad rows/);
    for (const l of [2, 3, 4, 6, 7, 8]) assert.match(e.message, new RegExp(`line ${l}: `));
    return true;
  });
  assert.doesNotThrow(() => checkBadRows(ds, true));
});

test('bad chat rows: unknown role, no assistant, wrong types, missing content, empty lists', async () => {
  const ds = await readDataset(join(FIX, 'bad/bad-chat.jsonl'));
  assert.equal(ds.mapping.shape, 'chat');
  assert.deepEqual(ds.badRows.map((r) => [r.line, r.kind]), [
    [2, 'unknown-role'],
    [3, 'no-assistant'],
    [4, 'wrong-type'],
    [5, 'wrong-type'],
    [6, 'missing-field'],
    [7, 'empty-field'],
    [8, 'empty-field'],
  ]);
  assert.match(ds.badRows[0]!.message, /line 2: messages\[1\] has role "robot"; expected one of system, user, assistant/);
  assert.deepEqual(ds.examples.map((e) => e.line), [1, 9]);
});

test('bad CSV: column counts, invalid UTF-8, empty completion, a quote that never closes', async () => {
  const path = join(FIX, 'bad/bad.csv');
  const ds = await readDataset(path);
  assert.equal(ds.format, 'csv');
  assert.deepEqual(ds.columns, ['prompt', 'completion']);
  assert.deepEqual(ds.badRows.map((r) => [r.line, r.kind]), [
    [4, 'column-count'],
    [5, 'column-count'],
    [8, 'invalid-utf8'],
    [9, 'empty-field'],
    [11, 'unclosed-quote'],
  ]);
  assert.match(ds.badRows[0]!.message, /line 4: has 3 fields, the header has 2/);
  const pcs = ds.examples.map((e) => (e.kind === 'prompt-completion' ? [e.line, e.prompt, e.completion] : null));
  assert.deepEqual(pcs, [
    [2, 'What is 2+2?\n', '4'],
    [3, 'Hello, world\n', 'greeting'],
    [6, 'multi\r\nline\n', 'ok'], // a quoted line break is kept as written (CRLF here), as Python's csv does
    [10, 'last\n', 'row'],
  ]);
});

test('CSV records agree with Python csv on BANKING77 (quoted commas and line breaks); columns by name', async (t) => {
  const path = join(FIX, 'banking77/train_head.csv');
  const text = await readFile(path, 'utf8');
  const ours = parseCsv(text);
  assert.equal(ours.unclosedQuoteLine, null);
  const skip = needTool('python3');
  if (skip) return t.skip(skip);
  const py = spawnSync('python3', ['-c', 'import csv,json,sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline="", encoding="utf-8")))))', path], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  assert.deepEqual(ours.records.map((r) => r.fields), JSON.parse(py.stdout));
  const multi = ours.records.find((r) => r.lastLine > r.line)!;
  assert.deepEqual([multi.line, multi.lastLine], [34, 38], 'a record spanning lines starts on its first line');

  // Auto-detection takes the text column (plain text); naming columns makes intent classification rows.
  assert.equal((await readDataset(path)).mapping.shape, 'text');
  const ds = await readDataset(path, { promptColumn: 'text', completionColumn: 'category' });
  assert.equal(ds.examples.length, 36);
  const first = ds.examples[0]!;
  assert.ok(first.kind === 'prompt-completion');
  assert.deepEqual([first.prompt, first.completion], ['I am still waiting on my card?\n', 'card_arrival']);
  await assert.rejects(readDataset(path, { promptColumn: 'query', completionColumn: 'category' }), /no column "query"; the header has text, category/);
});

test('format: by extension, by content, or as asked; options that do not fit are refused', () => {
  assert.equal(parseDataset(enc('{"text": "a"}\n{"text": "b"}\n'), 'data.bin').format, 'jsonl');
  assert.equal(parseDataset(enc('Once upon a time.\n\nThe end.\n'), 'data.bin').format, 'text');
  assert.equal(parseDataset(enc('text\nhello\n'), 'x.txt', { format: 'csv' }).examples.length, 1);
  assert.throws(() => parseDataset(enc('hello\n'), 'x.txt', { textColumn: 'text' }), /column names apply to JSONL and CSV files/);
  assert.throws(() => parseDataset(enc('{"a": 1}\n'), 'x.jsonl'), /x\.jsonl: no row has a known shape \(found keys a\)/);
  assert.throws(() => parseDataset(enc('{"a": 1}\n'), 'x.jsonl', { promptColumn: 'a' }), /prompt column and the completion column together/);
  // The majority shape wins, so one odd row is reported against it instead of changing the file's shape.
  const mixed = parseDataset(enc('{"prompt": "p", "completion": "c"}\n{"text": "t"}\n{"prompt": "q", "completion": "d"}\n'), 'm.jsonl');
  assert.equal(mixed.mapping.shape, 'prompt-completion');
  assert.deepEqual(mixed.badRows.map((r) => [r.line, r.kind]), [[2, 'missing-field']]);
});
