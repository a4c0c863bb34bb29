// Tests what the fixtures cannot show for ZO_FORWARD, ZO_STEP, PROFILE and SET_SPLIT: encoder refusals, corrupt
// array counts, the PROFILE document's validation and the parsing of HELLO's backends string. Not the byte-exact
// layout (protocol-fixtures.test.ts) nor the client's I/O (protocol-agent-client.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  makeTensor,
} from '../../electron/core/protocol/messages.js';
import { parseBackends, parseProfileResult } from '../../electron/core/protocol/profile.js';
import { ByteWriter, concatBytes, ProtocolError } from '../../electron/core/protocol/wire.js';

const bytes = (chunks: Uint8Array[]) => concatBytes(chunks);

test('ZO_FORWARD: targets without mask, and unequal copy sums, are refused on encode', () => {
  const input = makeTensor('i32', [2, 1], new Int32Array([1, 2]));
  assert.throws(
    () => encodeRequest('ZO_FORWARD', { seed: 1, step: 1, queries: 1, firstQuery: 0, eps: 1e-3, flags: 0, input, targets: input }),
    /ZO_FORWARD request: targets and mask go together/,
  );
  assert.throws(
    () => encodeReply('ZO_FORWARD', { outputKind: 1, copyLossSums: [1, 2], copyWeightSums: [1] }),
    /2 copy_loss_sums but 1 copy_weight_sums/,
  );
  assert.throws(
    () => encodeRequest('ZO_FORWARD', { seed: 2 ** 53, step: 1, queries: 1, firstQuery: 0, eps: 1e-3, flags: 0, input }),
    /seed must be a non-negative safe integer/,
  );
});

test('ZO_FORWARD round trip with an f16 hidden input and a hidden reply', () => {
  const input = makeTensor('f16', [2, 1, 2], new Uint16Array([0x3c00, 0xbc00, 0x3800, 0x0001]));
  const req = { seed: 0x1_0000_0001, step: 7, queries: 1, firstQuery: 6, eps: 0.5, flags: 4, input };
  assert.deepStrictEqual(decodeRequest('ZO_FORWARD', bytes(encodeRequest('ZO_FORWARD', req))), req);
  const hidden = makeTensor('f32', [2, 1, 2], new Float32Array([1, -2, 3, -4]));
  const rep = { outputKind: 0 as const, hidden };
  assert.deepStrictEqual(decodeReply('ZO_FORWARD', bytes(encodeReply('ZO_FORWARD', rep))), rep);
  assert.throws(() => decodeReply('ZO_FORWARD', new Uint8Array([2])), /output_kind 2, expected 0 \(hidden\) or 1/);
});

test('array counts are checked against the payload before allocating', () => {
  const huge = new ByteWriter().u64(1).u32(1).f32(1).u32(0xffffffff).toBytes();
  assert.throws(() => decodeRequest('ZO_STEP', huge), /g: 4294967295 entries need \d+ bytes, the payload has 0 left/);
  const split = new ByteWriter().u32(1_000_000).u32(1).u32(32).toBytes();
  assert.throws(() => decodeRequest('SET_SPLIT', split), /layers: 1000000 entries need 8000000 bytes/);
  const sums = new ByteWriter().u8(1).u32(2).f64(1).toBytes();
  assert.throws(() => decodeReply('ZO_FORWARD', sums), /copy_loss_sums: 2 entries need 16 bytes, the payload has 8/);
});

test('ZO_STEP g and SET_SPLIT layers encode as u32 count + values', () => {
  const step = bytes(encodeRequest('ZO_STEP', { seed: 3, step: 4, lr: 0.5, g: [1.5, -2] }));
  assert.equal(step.length, 8 + 4 + 4 + 4 + 2 * 4);
  assert.deepStrictEqual(decodeRequest('ZO_STEP', step), { seed: 3, step: 4, lr: 0.5, g: [1.5, -2] });
  assert.throws(() => encodeRequest('ZO_STEP', { seed: 3, step: 4, lr: 0.5, g: 'x' as never }), /g must be an array/);
  const split = bytes(encodeRequest('SET_SPLIT', { layers: [{ gpuKvGroups: 1, gpuMlpCols: 64 }] }));
  assert.deepStrictEqual([...split], [1, 0, 0, 0, 1, 0, 0, 0, 64, 0, 0, 0]);
  assert.throws(
    () => encodeRequest('SET_SPLIT', { layers: [{ gpuKvGroups: -1, gpuMlpCols: 0 }] }),
    /layers\[0\]\.gpu_kv_groups must be an integer/,
  );
  assert.deepStrictEqual([...bytes(encodeRequest('PROFILE', { batch: 1, seqLen: 2, reps: 3 }))], [
    1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
  ]);
});

const goodProfile = {
  shape: { batch: 2, seqLen: 64 },
  reps: 3,
  backends: [
    { name: 'cpu', role: 'primary' as const, device: 'x86_64 avx2 x2 threads' },
    { name: 'cpu-2', role: 'secondary' as const, device: 'x86_64 avx2 x2 threads' },
  ],
  layers: [{ layer: 0, backend: 'cpu', forwardMs: 1.5, backwardMs: 3 }],
  heads: [{ backend: 'cpu', attentionForwardMsPerGroup: 0.25, attentionBackwardMsPerGroup: 0.5 }],
  mlp: [{ backend: 'cpu', forwardMsPer32Cols: 0.01, backwardMsPer32Cols: 0.02 }],
};

test('a PROFILE document is validated; fields a later agent adds are dropped', () => {
  assert.deepStrictEqual(parseProfileResult(JSON.stringify(goodProfile)), goodProfile);
  const extra = { ...goodProfile, headMs: 3, layers: [{ ...goodProfile.layers[0], embeddingMs: 1 }] };
  assert.deepStrictEqual(parseProfileResult(JSON.stringify(extra)), goodProfile);
  assert.throws(() => parseProfileResult('{"shape":', 'agent on X'), /PROFILE reply from agent on X is not JSON/);
  const cases: [unknown, RegExp][] = [
    [{ ...goodProfile, shape: { batch: 0, seqLen: 64 } }, /shape\.batch: /],
    [{ ...goodProfile, reps: undefined }, /reps: /],
    [{ ...goodProfile, backends: [] }, /backends: /],
    [{ ...goodProfile, layers: [{ layer: 0.5, backend: 'cpu', forwardMs: 1, backwardMs: 1 }] }, /layers\.0\.layer: /],
    [{ ...goodProfile, mlp: [{ backend: 'cpu', forwardMsPer32Cols: 1 }] }, /mlp\.0\.backwardMsPer32Cols: /],
    [{ ...goodProfile, heads: [{ ...goodProfile.heads[0], backend: 'opencl' }] }, /backend 'opencl' is not one of/],
    [{ ...goodProfile, backends: [goodProfile.backends[0], { ...goodProfile.backends[1], name: 'cpu' }] }, /duplicate/],
    [{ ...goodProfile, backends: [goodProfile.backends[1], goodProfile.backends[0]] }, /the primary, then at most/],
    [{ ...goodProfile, backends: [{ ...goodProfile.backends[0], role: 'gpu' }] }, /backends\.0\.role: /],
    [{ ...goodProfile, layers: [{ layer: 0, backend: 'cpu', forwardMs: '1', backwardMs: 1 }] }, /forwardMs/],
  ];
  for (const [doc, pattern] of cases) {
    assert.throws(() => parseProfileResult(JSON.stringify(doc)), (e: unknown) => {
      assert.ok(e instanceof ProtocolError);
      assert.match(e.message, pattern);
      return true;
    });
  }
});

test("HELLO's backends string splits at top-level commas; details keep commas and parentheses", () => {
  assert.deepStrictEqual(parseBackends('cpu-ref'), [{ name: 'cpu-ref' }]);
  assert.deepStrictEqual(parseBackends(''), []);
  assert.deepStrictEqual(parseBackends('cpu(avx512 x2),opencl-unavailable(no libOpenCL.so, tried 3 paths)'), [
    { name: 'cpu', detail: 'avx512 x2' },
    { name: 'opencl-unavailable', detail: 'no libOpenCL.so, tried 3 paths' },
  ]);
  assert.deepStrictEqual(parseBackends('cpu(neon),opencl(QUALCOMM Adreno(TM) 740 (OpenCL 3.0)),'), [
    { name: 'cpu', detail: 'neon' },
    { name: 'opencl', detail: 'QUALCOMM Adreno(TM) 740 (OpenCL 3.0)' },
  ]);
  assert.deepStrictEqual(parseBackends(' reference , cpu() '), [{ name: 'reference' }, { name: 'cpu', detail: '' }]);
});
