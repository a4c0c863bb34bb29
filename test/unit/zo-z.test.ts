// The host's port of the P-RGE z stream (electron/core/train/zo-z.ts) against the golden values of the independent
// Python implementation (test/fixtures/prge/make_prge_golden.py): Philox known answers, Box–Muller doubles exactly,
// and whole f32 streams bit for bit. The MeZO reference of test/integration/zo-pipeline.test.ts relies on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findRepoRoot } from '../../electron/core/paths.js';
import { normalPair, philox4x32_10, zStream } from '../../electron/core/train/zo-z.js';

interface Golden {
  philox_kat: { rounds: number; counter: number[]; key: number[]; out: number[] }[];
  normal_pairs: { k1: number; k2: number; double: [string, string] }[];
  streams: { seed: string; step: number; query: number; param_id: number; first: number; n: number; bits: number[] }[];
}
const golden = JSON.parse(readFileSync(join(findRepoRoot(), 'test/fixtures/prge/z-golden.json'), 'utf8')) as Golden;

/** C99 hex float ("-0x1.cd05ff506ce99p+0") to the double it names exactly (≤ 53 mantissa bits). */
function hexFloat(s: string): number {
  const m = /^(-?)0x([01])\.([0-9a-f]*)p([+-]\d+)$/.exec(s);
  if (!m) throw new Error(`not a hex float: ${s}`);
  const mant = BigInt(`0x${m[2]}${m[3]}`);
  return (m[1] ? -1 : 1) * Number(mant) * 2 ** (Number(m[4]) - 4 * m[3].length);
}

const f32Bits = (x: Float32Array) => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];

test('Philox4x32-10 matches the known-answer vectors', () => {
  const tenRound = golden.philox_kat.filter((k) => k.rounds === 10);
  assert.ok(tenRound.length >= 3);
  for (const k of tenRound) assert.deepEqual(philox4x32_10(k.counter, k.key), k.out);
});

test('Box–Muller pairs equal the golden doubles exactly', () => {
  assert.ok(golden.normal_pairs.length > 400);
  for (const p of golden.normal_pairs) {
    const [z0, z1] = normalPair(p.k1, p.k2);
    assert.equal(z0, hexFloat(p.double[0]), `z0 of (${p.k1}, ${p.k2})`);
    assert.equal(z1, hexFloat(p.double[1]), `z1 of (${p.k1}, ${p.k2})`);
  }
});

test('f32 streams equal the golden bits (every stream whose seed and range a double can key)', () => {
  let checked = 0;
  for (const s of golden.streams) {
    const seed = BigInt(s.seed);
    if (seed >= 2n ** 53n || s.first + s.n > 1e6) continue; // the host keeps seeds below 2^53
    const z = zStream(s.first + s.n, Number(seed), s.step, s.query, s.param_id).subarray(s.first);
    assert.deepEqual(f32Bits(z), s.bits, `stream ${s.seed}/${s.step}/${s.query}/${s.param_id}`);
    checked++;
  }
  assert.ok(checked >= 6, `checked ${checked} streams`);
});
