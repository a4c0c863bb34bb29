// Tests the incremental frame parser on the fixture frames cut into every possible chunking, and its errors for
// bad magic / flags / absurd length / truncation. Not a test of payload decoding (protocol-fixtures.test.ts).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FrameParser } from '../../electron/core/protocol/frame-stream.js';
import { concatBytes, type Frame, ProtocolError } from '../../electron/core/protocol/wire.js';
import { findRepoRoot as repoRoot } from '../../electron/core/paths.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'protocol');
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.bin'))
  .sort();
const frames = names.map((f) => new Uint8Array(readFileSync(join(dir, f))));
const all = concatBytes(frames);

/** The frame a fixture holds, read straight from its bytes (independent of the parser). */
function expectedFrame(bytes: Uint8Array): Frame {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { kind: view.getUint16(4, true), requestId: view.getUint32(8, true), payload: bytes.subarray(16) };
}
const expected = frames.map(expectedFrame);

function normalise(fs: Frame[]): { kind: number; requestId: number; payload: number[] }[] {
  return fs.map((f) => ({ kind: f.kind, requestId: f.requestId, payload: [...f.payload] }));
}

function header(magic: number, kind: number, flags: number, requestId: number, payloadBytes: number): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, true);
  v.setUint16(4, kind, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, requestId, true);
  v.setUint32(12, payloadBytes, true);
  return out;
}

test('all fixture frames in one chunk come out as separate frames, in order', () => {
  const p = new FrameParser('test');
  assert.deepStrictEqual(normalise(p.push(all)), normalise(expected));
  assert.equal(p.pendingBytes, 0);
  assert.equal(p.truncation(), undefined);
});

test('one byte at a time gives the same frames', () => {
  const p = new FrameParser('test');
  const got: Frame[] = [];
  for (let i = 0; i < all.length; i++) got.push(...p.push(all.subarray(i, i + 1)));
  assert.deepStrictEqual(normalise(got), normalise(expected));
});

test('every split point of a two-frame stream gives the same frames', () => {
  const two = concatBytes([frames[0]!, frames[1]!]);
  for (let cut = 0; cut <= two.length; cut++) {
    const p = new FrameParser('test');
    const got = [...p.push(two.subarray(0, cut)), ...p.push(two.subarray(cut))];
    assert.deepStrictEqual(normalise(got), normalise(expected.slice(0, 2)), `cut at byte ${cut}`);
  }
});

test('chunks of random sizes (seeded) over the whole fixture stream', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % 97) + 1;
  const p = new FrameParser('test');
  const got: Frame[] = [];
  for (let at = 0; at < all.length; ) {
    const n = rand();
    got.push(...p.push(all.subarray(at, at + n)));
    at += n;
  }
  assert.deepStrictEqual(normalise(got), normalise(expected));
});

test('a bad magic is an error naming the magic and the source, and the parser stays failed', () => {
  const p = new FrameParser('agent on R58N-TEST');
  const bad = concatBytes([header(0x444e4644, 0x8001, 0, 1, 0)]);
  assert.throws(() => p.push(bad), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.match(e.message, /agent on R58N-TEST/);
    assert.match(e.message, /magic 0x444e4644, expected 0x444e4643/);
    return true;
  });
  assert.throws(() => p.push(frames[0]!), /magic/);
});

test('a bad magic after a good frame still returns nothing past the error', () => {
  const p = new FrameParser('test');
  assert.equal(p.push(frames[0]!).length, 1);
  assert.throws(() => p.push(header(0x12345678, 1, 0, 1, 0)), /magic 0x12345678/);
});

test('non-zero flags are an error naming the flags', () => {
  const p = new FrameParser('test');
  assert.throws(() => p.push(header(0x444e4643, 0x8004, 0x0100, 7, 0)), /flags 0x100 \(FORWARD reply\), must be 0/);
});

test('a payload over 1 GiB is an error naming the length and the limit', () => {
  const p = new FrameParser('test');
  assert.throws(
    () => p.push(header(0x444e4643, 0x8009, 0, 7, 0x40000001)),
    /payload_bytes 1073741825 \(STATS reply\) is over MAX_PAYLOAD_BYTES 1073741824/,
  );
  // Exactly 1 GiB is allowed: the parser waits for it (without allocating it up front).
  const ok = new FrameParser('test');
  assert.deepStrictEqual(ok.push(header(0x444e4643, 0x8009, 0, 7, 0x40000000)), []);
});

test('a stream that ends mid-payload or mid-header reports what is missing', () => {
  const f = frames.find((b) => b.length > 40)!;
  const p = new FrameParser('agent on R58N-TEST');
  assert.deepStrictEqual(p.push(f.subarray(0, 30)), []);
  const message = `stream from agent on R58N-TEST ended inside a frame: 14 of ${f.length - 16} payload bytes received`;
  assert.equal(p.truncation(), message);
  const q = new FrameParser('x');
  q.push(f.subarray(0, 5));
  assert.match(q.truncation()!, /inside a frame header: 5 of 16 bytes/);
});

test('empty chunks are harmless', () => {
  const p = new FrameParser('test');
  assert.deepStrictEqual(p.push(new Uint8Array(0)), []);
  assert.equal(p.push(frames[0]!).length, 1);
});
