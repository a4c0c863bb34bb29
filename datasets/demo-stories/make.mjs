#!/usr/bin/env node
// Regenerates datasets/demo-stories/stories.txt from the TinyStories sample in shared/ (deterministic, no randomness).
// It is a one-off data-preparation script, not part of the app: the app only reads the committed stories.txt.
//
// What it does: takes the stories of tinystories_head.txt that mention "Lily" (the name stories260K writes by
// default: greedy decoding from "Once upon a time, there was a little girl named" gives "Lily"), renames her to
// "Zara" everywhere (whole word, so "Lily's" becomes "Zara's"; the flower "lily" in lower case is left alone), and
// writes them in source order, separated by `<|endoftext|>` lines. "Zara" never occurs in the source text, so after
// a LoRA fine-tune on this file, generating "Zara" is visible evidence that the adapter changed the model.
//
// Selection (all deterministic): stories with the exact phrase "named Lily" first (they teach the opening that the
// demo prompt uses), then the other Lily stories, each in source order; stories longer than MAX_STORY_BYTES are
// skipped; stop before the output would exceed MAX_OUTPUT_BYTES. The selected stories are then written in their
// original order.
//
// Usage: node datasets/demo-stories/make.mjs [path/to/tinystories_head.txt [output path]]
//   default input: ../shared/data/tinystories-sample/tinystories_head.txt relative to the repository root;
//   default output: stories.txt beside this script (the test writes elsewhere and compares).
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const input = process.argv[2] || join(repoRoot, '..', 'shared', 'data', 'tinystories-sample', 'tinystories_head.txt');
const output = process.argv[3] || join(here, 'stories.txt');

const SOURCE_SHA256 = 'ba02237f5747a07d420cb7329f721fdc51b6f5c35a81788b9c4bb871e15ff30a';
const OLD_NAME = 'Lily';
const NEW_NAME = 'Zara';
const SEPARATOR = '<|endoftext|>';
const MAX_STORY_BYTES = 1400;
const MAX_OUTPUT_BYTES = 190_000;

const raw = readFileSync(input);
const sha = createHash('sha256').update(raw).digest('hex');
if (sha !== SOURCE_SHA256) {
  console.error(`${input}: sha256 ${sha} is not the expected ${SOURCE_SHA256} (see shared/data/tinystories-sample/README.md); refusing to build a different dataset.`);
  process.exit(1);
}
const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
const stories = text
  .split(`\n${SEPARATOR}\n`)
  .map((s) => s.replace(/^\n+|\n+$/g, ''))
  .filter((s) => s.length > 0);

const hasOldName = new RegExp(`\\b${OLD_NAME}\\b`);
const oldWordAll = new RegExp(`\\b${OLD_NAME}\\b`, 'g');
if (new RegExp(`\\b${NEW_NAME}\\b`).test(text)) {
  console.error(`${input}: already contains "${NEW_NAME}"; pick a name the base model has not seen.`);
  process.exit(1);
}

const candidates = stories
  .map((story, index) => ({ story, index }))
  .filter(({ story }) => hasOldName.test(story) && Buffer.byteLength(story) <= MAX_STORY_BYTES);
const named = candidates.filter(({ story }) => story.includes(`named ${OLD_NAME}`));
const others = candidates.filter(({ story }) => !story.includes(`named ${OLD_NAME}`));

const chosen = [];
let bytes = 0;
for (const c of [...named, ...others]) {
  const renamed = c.story.replace(oldWordAll, NEW_NAME);
  const cost = Buffer.byteLength(renamed) + Buffer.byteLength(`\n${SEPARATOR}\n`);
  if (bytes + cost > MAX_OUTPUT_BYTES) break;
  chosen.push({ index: c.index, story: renamed });
  bytes += cost;
}
chosen.sort((a, b) => a.index - b.index);

const out = chosen.map((c) => `${c.story}\n${SEPARATOR}\n`).join('');
writeFileSync(output, out);
const outSha = createHash('sha256').update(out).digest('hex');
const mentions = (out.match(new RegExp(`\\b${NEW_NAME}\\b`, 'g')) ?? []).length;
const namedCount = chosen.filter((c) => c.story.includes(`named ${NEW_NAME}`)).length;
console.log(`${output}: ${chosen.length} stories (${namedCount} with "named ${NEW_NAME}"), ${Buffer.byteLength(out)} bytes, ` +
  `${mentions} mentions of "${NEW_NAME}", sha256 ${outSha}`);
