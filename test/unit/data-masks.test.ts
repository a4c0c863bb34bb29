// Tests token ids and loss masks of prompt/completion rows against an independent computation (prompt and full
// text tokenized separately), truncation and dropped-row counts, split determinism, skipping bad rows, the
// unchanged plain-text path, and the preview's rendering of the trained part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadTokenizer, type TextTokenizer } from '../../electron/core/model/tokenizer.js';
import { loadDataset } from '../../electron/core/data/load-dataset.js';
import { prepareDataset } from '../../electron/core/data/prepare-dataset.js';
import { readTextDataset } from '../../electron/core/data/text-dataset.js';
import { prepareSamples } from '../../electron/core/data/samples.js';
import { buildDatasetPreview } from '../../electron/core/data/preview.js';
import { loadTrainingData } from '../../electron/core/train/training-data.js';
import { findRepoRoot } from '../../electron/core/paths.js';

const ROOT = findRepoRoot();
const STORIES = join(ROOT, 'models', 'stories260K');
const FIX = join(ROOT, 'test', 'fixtures', 'data');
const GSM = join(FIX, 'gsm8k', 'train_head.jsonl');
let tokP: Promise<TextTokenizer> | null = null;
const tokenizer = () => (tokP ??= loadTokenizer(STORIES));

/** The reference: full = prompt+completion tokenized, + EOS; trained from where prompt's own tokens stop matching. */
function reference(tok: TextTokenizer, prompt: string, completion: string): { ids: number[]; firstTrained: number } {
  const full = [...tok.encode(prompt + completion), tok.eosTokenId!];
  const own = tok.encode(prompt);
  let k = 0;
  while (k < own.length && own[k] === full[k]) k++;
  return { ids: full, firstTrained: k };
}

test('masks cover exactly the completion tokens and EOS (GSM8K, Dolly, BANKING77 rows)', async () => {
  const tok = await tokenizer();
  const files: [string, object][] = [[GSM, {}], [join(FIX, 'dolly/dolly_151_head.jsonl'), {}], [join(FIX, 'banking77/train_head.csv'), { promptColumn: 'text', completionColumn: 'category' }]];
  let seamMerges = 0;
  for (const [file, opts] of files) {
    const { read, encoded } = await loadDataset(file, tok, STORIES, opts);
    assert.equal(encoded.length, read.examples.length);
    encoded.forEach((e, i) => {
      const ex = read.examples[i]!;
      assert.ok(ex.kind === 'prompt-completion');
      const ref = reference(tok, ex.prompt, ex.completion);
      if (ref.firstTrained < tok.encode(ex.prompt).length) seamMerges++;
      assert.deepEqual(e.ids, ref.ids, `${file} line ${e.line}`);
      assert.deepEqual(Array.from(e.trained), ref.ids.map((_, j) => (j >= ref.firstTrained ? 1 : 0)), `${file} line ${e.line}`);
      // What is trained decodes to the completion (the seam newline belongs to the prompt).
      assert.equal(tok.decode(e.ids.slice(ref.firstTrained)).trim(), ex.completion.trim(), `${file} line ${e.line}`);
    });
  }
  assert.equal(seamMerges, 0, 'with a newline seam no token straddles prompt and completion');
});

test('samples: one row per sequence, cut from the right; truncated and dropped rows counted', async () => {
  const tok = await tokenizer();
  const { read, encoded } = await loadDataset(GSM, tok, STORIES);
  const seqLen = 96;
  const p = prepareDataset(read, encoded, tok.eosTokenId, { seqLen, validationFraction: 0.1, seed: 5, padTokenId: 0 });
  // Independent counts from the reference tokenization.
  const refs = read.examples.map((ex) => (ex.kind === 'prompt-completion' ? reference(tok, ex.prompt, ex.completion) : null)!);
  const truncated = refs.filter((r) => r.ids.length - 1 > seqLen).length;
  const dropped = refs.filter((r) => r.firstTrained > seqLen).length;
  assert.equal(p.stats.truncatedRows, truncated);
  assert.equal(p.stats.droppedRows, dropped);
  assert.ok(truncated > 0 && dropped > 0, 'seqLen 96 cuts some GSM8K rows and drops some');
  assert.equal(p.train.length + p.validation.length, read.examples.length - dropped);
  const expectedTrained = refs.reduce((sum, r) => sum + Math.max(0, Math.min(r.ids.length - 1, seqLen) - (r.firstTrained - 1)), 0);
  assert.equal(p.stats.trainedTokens, expectedTrained);
  // Each sample is its row's first seqLen pairs, mask 1 exactly on completion targets, padding after.
  for (const s of [...p.train, ...p.validation]) {
    const ref = refs.find((r) => r.ids.slice(0, seqLen).every((id, t) => s.tokens[t] === id))!;
    const n = Math.min(seqLen, ref.ids.length - 1);
    for (let t = 0; t < seqLen; t++) {
      assert.equal(s.mask[t], t < n && t + 1 >= ref.firstTrained ? 1 : 0);
      if (t < n) assert.equal(s.targets[t], ref.ids[t + 1]);
    }
  }
});

test('split by row is deterministic per seed, disjoint and complete', async () => {
  const tok = await tokenizer();
  const { read, encoded } = await loadDataset(GSM, tok, STORIES);
  const o = { seqLen: 512, validationFraction: 0.2, seed: 11, padTokenId: 0 };
  const a = prepareDataset(read, encoded, tok.eosTokenId, o);
  assert.deepEqual(prepareDataset(read, encoded, tok.eosTokenId, o), a);
  const b = prepareDataset(read, encoded, tok.eosTokenId, { ...o, seed: 12 });
  const key = (s: { tokens: Int32Array }) => Array.from(s.tokens).join(',');
  assert.notDeepEqual(b.validation.map(key), a.validation.map(key));
  assert.deepEqual([a.stats.trainExamples, a.stats.validationExamples], [24, 6]);
  const trainKeys = new Set(a.train.map(key));
  assert.ok(a.validation.every((s) => !trainKeys.has(key(s))), 'no row on both sides');
  assert.equal(a.train.length + a.validation.length, 30);
});

test('plain text goes the same way as before (chunked, every target once)', async () => {
  const tok = await tokenizer();
  const path = join(ROOT, 'datasets', 'demo-stories', 'stories.txt');
  const o = { seqLen: 64, validationFraction: 0.1, seed: 1234 };
  const now = await loadTrainingData(path, tok, { ...o, modelDir: STORIES });
  const before = prepareSamples((await readTextDataset(path)).documents.map((d) => d.text), (t, e) => tok.encode(t, e), { ...o, padTokenId: tok.padTokenId ?? 0, endTokenId: tok.eosTokenId });
  assert.deepEqual(now.train, before.train);
  assert.deepEqual(now.validation, before.validation);
});

test('training refuses bad rows (listing each) unless skipped; every row cut off is an error', async () => {
  const tok = await tokenizer();
  const o = { seqLen: 64, validationFraction: 0.1, seed: 1, modelDir: STORIES };
  const bad = join(FIX, 'bad/bad.csv');
  await assert.rejects(loadTrainingData(bad, tok, o), (e: Error) => {
    assert.match(e.message, /bad\.csv has 5 bad rows/);
    for (const l of [4, 5, 8, 9, 11]) assert.match(e.message, new RegExp(`bad\\.csv: line ${l}: `));
    return true;
  });
  const skipped = await loadTrainingData(bad, tok, { ...o, dataset: { skipBadRows: true } });
  assert.deepEqual([skipped.stats.examples, skipped.stats.badRows], [4, 5]);
  assert.equal(skipped.train.length + skipped.validation.length, 4);
  await assert.rejects(loadTrainingData(join(FIX, 'dolly/dolly_151_head.jsonl'), tok, { ...o, seqLen: 16 }), /at seq-len 16 every row is cut off before its completion starts/);
});

test('preview: trained part marked, ids and counts match, stats and bad rows', async () => {
  const tok = await tokenizer();
  const p = await buildDatasetPreview(join(FIX, 'bad/bad.jsonl'), tok, STORIES, { dataset: { skipBadRows: true }, seqLen: 64, validationFraction: 0.5, seed: 1, examples: 5 });
  assert.equal(p.format, 'jsonl');
  assert.equal(p.shape, 'prompt/completion (prompt, completion)');
  assert.equal(p.refused, null);
  assert.deepEqual(p.badRows.map((r) => r.line), [2, 3, 4, 6, 7, 8]);
  assert.deepEqual(p.examples.map((e) => e.line), [1, 9]);
  const first = p.examples[0]!;
  assert.deepEqual(first.segments.map((s) => s.trained), [false, true]);
  assert.equal(first.segments[1]!.text, 'Hi!</s>');
  assert.match(first.segments[0]!.text, /Say hi\.\n$/);
  assert.deepEqual(first.ids, [...tok.encode('Say hi.\nHi!'), tok.eosTokenId]);
  assert.equal(first.trainedTokens, first.trained.reduce((a, b) => a + b, 0));
  assert.equal(first.trainedTokens, tok.encode('Say hi.\nHi!').length - tok.encode('Say hi.\n').length + 1);
  const refused = await buildDatasetPreview(join(FIX, 'bad/bad.jsonl'), tok, STORIES, { dataset: {}, seqLen: 64, validationFraction: 0.5, seed: 1, examples: 1 });
  assert.match(refused.refused ?? '', /6 bad rows: training refuses the file/);
});
