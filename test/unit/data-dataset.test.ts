// Tests the text-dataset reader (formats, issues with line numbers), sample building, split and shuffle determinism,
// the PRNG against a python3 re-implementation, and the bundled demo dataset. Does not train anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTextDataset, readTextDataset } from '../../electron/core/data/text-dataset.js';
import { buildSamples, collateBatch, epochOrder, prepareSamples, splitTrainValidation } from '../../electron/core/data/samples.js';
import { mulberry32, permutation } from '../../electron/core/data/rng.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { needTool } from '../support/tools.js';
import { findRepoRoot as repoRoot } from '../../electron/core/paths.js';

const ROOT = repoRoot();
const DEMO = join(ROOT, 'datasets', 'demo-stories', 'stories.txt');
const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

test('separator format: stories between <|endoftext|> lines keep their inner blank lines', () => {
  const ds = parseTextDataset(enc('First story.\nLine two.\n<|endoftext|>\n\nSecond.\n\nAfter a blank.\n<|endoftext|>\nThird\r\n'), 'a.txt');
  assert.equal(ds.format, 'separator');
  assert.deepEqual(ds.documents, [
    { text: 'First story.\nLine two.', firstLine: 1, lastLine: 2 },
    { text: 'Second.\n\nAfter a blank.', firstLine: 5, lastLine: 7 },
    { text: 'Third', firstLine: 9, lastLine: 9 },
  ]);
  assert.deepEqual(ds.issues, []);
});

test('blank-line format: one document per block when there is no separator', () => {
  const ds = parseTextDataset(enc('\uFEFFalpha\nbeta\n\n\n  \ngamma\n'), 'b.txt');
  assert.equal(ds.format, 'blank-lines');
  assert.deepEqual(ds.documents.map((d) => [d.text, d.firstLine, d.lastLine]), [['alpha\nbeta', 1, 2], ['gamma', 6, 6]]);
});

test('bad entries are reported with line numbers and left out', () => {
  const bytes = Buffer.concat([
    enc('Good one.\n<|endoftext|>\n'), // lines 1-2
    enc('Broken: '), Buffer.from([0xc3, 0x28]), enc('\nmore\n<|endoftext|>\n'), // lines 3-5, line 3 invalid UTF-8
    enc('\n  \n<|endoftext|>\n'), // lines 6-8: empty entry
    enc('nul\u0000here\n<|endoftext|>\n'), // lines 9-10
    enc('Good two.\n<|endoftext|>\n'), // lines 11-12
  ]);
  const ds = parseTextDataset(bytes, 'bad.txt');
  assert.deepEqual(ds.documents.map((d) => d.text), ['Good one.', 'Good two.']);
  assert.deepEqual(ds.issues.map((i) => [i.kind, i.line, i.lastLine]), [['invalid-utf8', 3, 4], ['empty', 6, 8], ['nul-bytes', 9, 9]]);
  assert.equal(ds.issues[0]!.message, 'bad.txt: line 3 is not valid UTF-8; the entry at lines 3-4 is left out');
  assert.equal(ds.issues[1]!.message, 'bad.txt: lines 6-8: empty entry (nothing between two <|endoftext|> separators)');
  assert.throws(() => parseTextDataset(Buffer.from([0xff, 0xfe, 0x41, 0x00]), 'u16.txt'), /u16\.txt: the file is UTF-16/);
  assert.throws(() => parseTextDataset(enc('\n\n<|endoftext|>\n'), 'none.txt'), /none\.txt: no usable text/);
});

test('samples: next-token targets, chunking of long documents, padding with mask 0', () => {
  const s = buildSamples([[1, 10, 11, 12, 13, 14], [1, 20]], { seqLen: 3, padTokenId: 0 });
  assert.deepEqual(s.map((x) => [Array.from(x.tokens), Array.from(x.targets), Array.from(x.mask), x.docIndex, x.chunkIndex]), [
    [[1, 10, 11], [10, 11, 12], [1, 1, 1], 0, 0],
    [[12, 13, 0], [13, 14, 0], [1, 1, 0], 0, 1],
    [[1, 0, 0], [20, 0, 0], [1, 0, 0], 1, 0],
  ]);
  const withEnd = buildSamples([[1, 20]], { seqLen: 4, endTokenId: 2 });
  assert.deepEqual(Array.from(withEnd[0]!.targets), [20, 2, 0, 0]);
  assert.deepEqual(buildSamples([[1]], { seqLen: 4 }), [], 'a document with no target gives no sample');
  const b = collateBatch(s.slice(0, 2));
  assert.deepEqual([b.batchSize, b.seqLen, b.maskSum], [2, 3, 5]);
  assert.deepEqual(Array.from(b.tokens), [1, 10, 11, 12, 13, 0]);
});

test('split and epoch order are deterministic per seed, disjoint and complete', () => {
  const items = Array.from({ length: 50 }, (_, i) => `doc${i}`);
  const a = splitTrainValidation(items, { validationFraction: 0.1, seed: 7 });
  const again = splitTrainValidation(items, { validationFraction: 0.1, seed: 7 });
  const other = splitTrainValidation(items, { validationFraction: 0.1, seed: 8 });
  assert.deepEqual(a, again);
  assert.notDeepEqual(a.validation, other.validation);
  assert.equal(a.validation.length, 5);
  assert.equal(a.train.length, 45);
  assert.deepEqual([...a.train, ...a.validation].sort(), [...items].sort());
  assert.equal(splitTrainValidation(['x', 'y'], { validationFraction: 0.01, seed: 1 }).validation.length, 1, 'at least one held out');
  assert.equal(splitTrainValidation(items, { validationFraction: 0, seed: 1 }).validation.length, 0);
  assert.throws(() => splitTrainValidation(items, { validationFraction: 1, seed: 1 }), /validationFraction must be in \[0, 1\)/);

  const e0 = epochOrder(100, 42, 0);
  assert.deepEqual(e0, epochOrder(100, 42, 0));
  assert.notDeepEqual(e0, epochOrder(100, 42, 1));
  assert.notDeepEqual(e0, epochOrder(100, 43, 0));
  assert.deepEqual([...e0].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(permutation(0, 1), []);
});

test('mulberry32 matches an independent python3 implementation', (t) => {
  const skip = needTool('python3');
  if (skip) return t.skip(skip);
  // Written from the published C source of mulberry32 (Tommy Ettinger), with explicit 32-bit masking.
  const py = spawnSync('python3', ['-c', `
import json
def mulberry32(a):
    M = 0xFFFFFFFF
    while True:
        a = (a + 0x6D2B79F5) & M
        t = a
        t = ((t ^ (t >> 15)) * (t | 1)) & M
        t ^= (t + (((t ^ (t >> 7)) * (t | 61)) & M)) & M
        yield ((t ^ (t >> 14)) & M) / 4294967296
out = {}
for seed in (0, 1, 42, 4294967295):
    g = mulberry32(seed); out[str(seed)] = [next(g) for _ in range(5)]
print(json.dumps(out))`], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const expected = JSON.parse(py.stdout) as Record<string, number[]>;
  for (const seed of [0, 1, 42, 4294967295]) {
    const r = mulberry32(seed);
    assert.deepEqual(Array.from({ length: 5 }, () => r()), expected[String(seed)], `seed ${seed}`);
  }
});

test('demo dataset: Lily renamed to Zara, clean, small, and reproducible by make.mjs', async (t) => {
  const ds = await readTextDataset(DEMO);
  assert.equal(ds.format, 'separator');
  assert.deepEqual(ds.issues, []);
  assert.equal(ds.documents.length, 221);
  assert.ok((await stat(DEMO)).size < 200 * 1024);
  for (const d of ds.documents) {
    assert.ok(!/\bLily\b/.test(d.text), `line ${d.firstLine} still says Lily`);
    assert.ok(/\bZara\b/.test(d.text), `line ${d.firstLine} has no Zara`);
  }
  assert.ok(ds.documents.filter((d) => d.text.startsWith('Once upon a time, there was a little girl named Zara')).length >= 100);

  // make.mjs reads the shared TinyStories sample, which lies beside the repository in CI and development.
  const source = join(ROOT, '..', 'shared', 'data', 'tinystories-sample', 'tinystories_head.txt');
  if (!existsSync(source)) {
    process.stderr.write(`\n*** SKIPPING make.mjs reproduction: ${source} is absent\n`);
    return t.skip(`${source} is absent`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'cfd-demo-'));
  try {
    const out = join(dir, 'stories.txt');
    const r = spawnSync(process.execPath, [join(ROOT, 'datasets', 'demo-stories', 'make.mjs'), source, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok((await readFile(out)).equals(await readFile(DEMO)), 'make.mjs reproduces the committed stories.txt byte for byte');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('demo dataset tokenized into samples: every target counted once, chunks start with BOS, split deterministic', async () => {
  const tok = await loadTokenizer(join(ROOT, 'models', 'stories260K'));
  const ds = await readTextDataset(DEMO);
  const texts = ds.documents.map((d) => d.text);
  const opts = { seqLen: 128, validationFraction: 0.05, seed: 1234, padTokenId: 0 };
  const p = prepareSamples(texts, tok.encode, opts);
  const q = prepareSamples(texts, tok.encode, opts);
  assert.deepEqual(p, q);
  assert.equal(p.validationDocs, 11);
  assert.equal(p.trainDocs, 210);
  const split = splitTrainValidation(texts, opts);
  const pairs = (docs: string[]): number => docs.reduce((n, d) => n + tok.encode(d).length - 1, 0);
  assert.equal(p.trainTargets, pairs(split.train));
  assert.equal(p.validationTargets, pairs(split.validation));
  for (const s of p.train) {
    assert.equal(s.tokens.length, 128);
    if (s.chunkIndex === 0) assert.equal(s.tokens[0], 1);
    // Real targets form a prefix; after it everything is padding.
    const real = s.mask.reduce((a, b) => a + b, 0);
    assert.ok(s.mask.subarray(0, real).every((m) => m === 1) && s.mask.subarray(real).every((m) => m === 0));
    for (let i = 0; i + 1 < real; i++) assert.equal(s.targets[i], s.tokens[i + 1]);
  }
});
