// Checks the TypeScript protocol codec against the byte fixtures of the independent Python encoder
// (test/fixtures/protocol/make_fixtures.py): decode every .bin to its .json, re-encode to the same bytes.
// Fixtures marked "malformed" must be refused by the decoder.
// Not a test of I/O or the client (protocol-stream / protocol-agent-client tests) and not of the C++ agent.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { f16BitsToF32, f32ToF16Bits } from '../../electron/core/util/f16.js';
import {
  decodeError,
  decodeReply,
  decodeRequest,
  encodeError,
  encodeReply,
  encodeRequest,
  type Tensor,
} from '../../electron/core/protocol/messages.js';
import {
  COMMAND_CODES,
  type CommandName,
  decodeFrameHeader,
  encodeFrame,
  encodeFrameHeader,
  ERROR_KIND,
  FRAME_HEADER_BYTES,
  kindName,
  NOP_KIND,
  ProtocolError,
  REPLY_BIT,
} from '../../electron/core/protocol/wire.js';
import { findRepoRoot as repoRoot } from '../../electron/core/paths.js';

const FIXTURES_DIR = join(repoRoot(), 'test', 'fixtures', 'protocol');

interface FixtureMeta {
  name: string;
  kind: number;
  command: CommandName | 'ERROR' | 'NOP';
  is_reply: boolean;
  request_id: number;
  payload_bytes: number;
  fields: Record<string, unknown> | null;
  malformed?: boolean;
  note?: string;
}

interface JsonTensor {
  dtype: Tensor['dtype'];
  dims: number[];
  data: number[];
}

function isJsonTensor(v: unknown): v is JsonTensor {
  return typeof v === 'object' && v !== null && 'dtype' in v && 'dims' in v && 'data' in v;
}

function tensorFromJson(t: JsonTensor): Tensor {
  switch (t.dtype) {
    case 'f32':
      return { dtype: 'f32', dims: t.dims, data: Float32Array.from(t.data) };
    case 'i32':
      return { dtype: 'i32', dims: t.dims, data: Int32Array.from(t.data) };
    case 'u8':
      return { dtype: 'u8', dims: t.dims, data: Uint8Array.from(t.data) };
    case 'f16': {
      const bits = Uint16Array.from(t.data, (v) => f32ToF16Bits(v));
      // The fixture only holds exactly representable values, so this conversion must be lossless.
      bits.forEach((b, i) => assert.equal(f16BitsToF32(b), t.data[i], `f16 value ${t.data[i]} is not exact`));
      return { dtype: 'f16', dims: t.dims, data: bits };
    }
  }
}

const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** JSON fields (snake_case, null for absent parts, tensors as number lists) to the decoder's shape. */
function fromJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromJson);
  if (isJsonTensor(v)) return tensorFromJson(v);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null) out[camel(k)] = fromJson(x);
    return out;
  }
  return v;
}

function loadFixtures(): { meta: FixtureMeta; bytes: Uint8Array }[] {
  const names = readdirSync(FIXTURES_DIR)
    .filter((f) => f.endsWith('.bin'))
    .sort();
  return names.map((f) => ({
    bytes: new Uint8Array(readFileSync(join(FIXTURES_DIR, f))),
    meta: JSON.parse(readFileSync(join(FIXTURES_DIR, f.replace(/\.bin$/, '.json')), 'utf8')) as FixtureMeta,
  }));
}

const fixtures = loadFixtures();
/** NOP is a frame without a reply, not a command: checked on its own below. */
const commandFixtures = fixtures.filter((f) => f.meta.command !== 'NOP');

test('the fixture folder holds a request and a reply for every command, and errors', () => {
  assert.ok(fixtures.length >= 20, `only ${fixtures.length} fixtures in ${FIXTURES_DIR}`);
  for (const command of Object.keys(COMMAND_CODES)) {
    for (const isReply of [false, true]) {
      const found = fixtures.some(
        (f) => f.meta.command === command && f.meta.is_reply === isReply && !f.meta.malformed,
      );
      assert.ok(found, `no ${isReply ? 'reply' : 'request'} fixture for ${command}`);
    }
  }
  assert.ok(fixtures.some((f) => f.meta.command === 'ERROR'));
  for (const command of ['ZO_FORWARD', 'ZO_STEP', 'PROFILE', 'SET_SPLIT']) {
    assert.ok(
      fixtures.some((f) => f.meta.command === command && f.meta.malformed),
      `no malformed fixture for ${command}`,
    );
  }
});

test('the NOP fixture is the header the client sends: kind 0x0010, request id 0, no payload', () => {
  const nop = fixtures.filter((f) => f.meta.command === 'NOP');
  assert.equal(nop.length, 1);
  assert.deepStrictEqual(nop[0]!.bytes, encodeFrameHeader(NOP_KIND, 0, 0));
  assert.equal(kindName(nop[0]!.meta.kind), 'NOP');
});

for (const { meta, bytes } of commandFixtures.filter((f) => f.meta.malformed)) {
  test(`fixture ${meta.name}: a malformed payload is refused (${meta.note ?? ''})`, () => {
    const header = decodeFrameHeader(bytes, meta.name);
    assert.equal(header.kind, meta.kind);
    assert.equal(meta.fields, null);
    assert.notEqual(meta.command, 'ERROR');
    const command = meta.command as CommandName;
    const payload = bytes.subarray(FRAME_HEADER_BYTES);
    assert.throws(
      () => (meta.is_reply ? decodeReply(command, payload) : decodeRequest(command, payload)),
      ProtocolError,
    );
  });
}

for (const { meta, bytes } of commandFixtures.filter((f) => !f.meta.malformed)) {
  const command = meta.command as CommandName | 'ERROR';
  test(`fixture ${meta.name}: decodes to its .json and re-encodes to the same bytes`, () => {
    const header = decodeFrameHeader(bytes, meta.name);
    const expectedKind =
      command === 'ERROR' ? ERROR_KIND : COMMAND_CODES[command] | (meta.is_reply ? REPLY_BIT : 0);
    assert.equal(header.kind, expectedKind);
    assert.equal(header.kind, meta.kind);
    assert.equal(header.requestId, meta.request_id);
    assert.equal(header.payloadBytes, meta.payload_bytes);
    assert.equal(bytes.length, FRAME_HEADER_BYTES + meta.payload_bytes);
    const payload = bytes.subarray(FRAME_HEADER_BYTES);
    const expected = fromJson(meta.fields);

    let reencoded: Uint8Array[];
    if (command === 'ERROR') {
      const decoded = decodeError(payload);
      assert.deepStrictEqual(decoded, expected);
      reencoded = encodeError(decoded);
    } else if (meta.is_reply) {
      const decoded = decodeReply(command, payload);
      assert.deepStrictEqual(decoded, expected);
      reencoded = encodeReply(command, decoded);
    } else {
      const decoded = decodeRequest(command, payload);
      assert.deepStrictEqual(decoded, expected);
      reencoded = encodeRequest(command, decoded);
    }
    assert.deepStrictEqual(encodeFrame(meta.kind, meta.request_id, reencoded), bytes);
    // Encoding from the JSON values (not from our own decode) must give the same bytes too.
    const fromFields =
      command === 'ERROR'
        ? encodeError(expected as never)
        : meta.is_reply
          ? encodeReply(command, expected as never)
          : encodeRequest(command, expected as never);
    assert.deepStrictEqual(encodeFrame(meta.kind, meta.request_id, fromFields), bytes);
  });
}

test('f32 -> f16 conversion matches Python struct (round to nearest even) on the fixture cases', () => {
  const file = join(FIXTURES_DIR, 'f16-cases', 'f32_to_f16.json');
  const { cases } = JSON.parse(readFileSync(file, 'utf8')) as { cases: [number, number][] };
  assert.ok(cases.length > 30);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (const [f32Bits, f16Bits] of cases) {
    u32[0] = f32Bits;
    const got = f32ToF16Bits(f32[0]!);
    const hex = (n: number) => `0x${n.toString(16)}`;
    if ((f16Bits & 0x7c00) === 0x7c00 && (f16Bits & 0x3ff) !== 0) {
      assert.ok((got & 0x7c00) === 0x7c00 && (got & 0x3ff) !== 0, `NaN ${hex(f32Bits)} -> ${hex(got)}`);
    } else {
      assert.equal(hex(got), hex(f16Bits), `f32 ${f32[0]} (${hex(f32Bits)})`);
    }
  }
});

test('every f16 bit pattern survives f16 -> f32 -> f16', () => {
  for (let bits = 0; bits < 0x10000; bits++) {
    const back = f32ToF16Bits(f16BitsToF32(bits));
    const isNaN16 = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
    if (isNaN16) assert.ok((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0);
    else if (back !== bits) assert.fail(`f16 0x${bits.toString(16)} came back as 0x${back.toString(16)}`);
  }
});
