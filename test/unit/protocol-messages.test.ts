// Tests payload encode/decode edge cases the fixtures cannot show: short and long payloads, bad tensors, u64
// limits, f16 tensor conversion. Not the byte-exact layout check (protocol-fixtures.test.ts does that).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  makeTensor,
  tensorToF16,
  tensorToF32,
} from '../../electron/core/protocol/messages.js';
import { ByteReader, ByteWriter, concatBytes, ProtocolError } from '../../electron/core/protocol/wire.js';

const bytes = (chunks: Uint8Array[]) => concatBytes(chunks);

test('a payload one byte short names the field it ran out in', () => {
  const payload = bytes(encodeReply('STATS', {
    rssBytes: 1, peakRssBytes: 2, busyUs: 3, forwardCount: 4, backwardCount: 5, bytesIn: 6, bytesOut: 7,
  }));
  assert.equal(payload.length, 56);
  assert.throws(
    () => decodeReply('STATS', payload.subarray(0, 55)),
    /STATS reply: .*while reading bytes_out \(u64, 8 bytes at offset 48\)/,
  );
});

test('STATS: the fields added within version 1 come together; a reply cut inside them names the field', () => {
  const base = { rssBytes: 1, peakRssBytes: 2, busyUs: 3, forwardCount: 4, backwardCount: 5, bytesIn: 6, bytesOut: 7 };
  const full = { ...base, primaryBusyUs: 2, secondaryBusyUs: 1, temperatureMillicelsius: -5250, temperatureZone: 'skin' };
  const payload = bytes(encodeReply('STATS', full));
  assert.equal(payload.length, 56 + 16 + 1 + 4 + 4 + 4);
  assert.deepStrictEqual(decodeReply('STATS', payload), full);
  const cold = bytes(encodeReply('STATS', { ...base, primaryBusyUs: 2, secondaryBusyUs: 1 }));
  assert.equal(cold.length, 56 + 16 + 1);
  assert.deepStrictEqual(decodeReply('STATS', cold), { ...base, primaryBusyUs: 2, secondaryBusyUs: 1 });
  assert.throws(() => decodeReply('STATS', payload.subarray(0, 56 + 12)), /while reading secondary_busy_us/);
  assert.throws(() => encodeReply('STATS', { ...base, primaryBusyUs: 2 }), /primaryBusyUs and secondaryBusyUs go together/);
  assert.throws(() => encodeReply('STATS', { ...base, temperatureMillicelsius: 40000, temperatureZone: 'cpu' }), /go together/);
  assert.throws(
    () => encodeReply('STATS', { ...base, primaryBusyUs: 2, secondaryBusyUs: 1, temperatureMillicelsius: 40000 }),
    /temperatureMillicelsius and temperatureZone go together/,
  );
});

test('HELLO: an older agent\'s reply ends after backends and decodes without openclDeviceType', () => {
  const hello = { agentVersion: 'v', protocolVersion: 1, abi: 'x86_64', cpuThreads: 2, memoryBudgetBytes: 0, backends: 'cpu(avx2 x2)' };
  const short = bytes(encodeReply('HELLO', hello));
  assert.deepStrictEqual(decodeReply('HELLO', short), hello);
  const withType = bytes(encodeReply('HELLO', { ...hello, openclDeviceType: '' }));
  assert.equal(withType.length, short.length + 4);
  assert.deepStrictEqual(decodeReply('HELLO', withType), { ...hello, openclDeviceType: '' });
});

test('bytes left after the last field are an error', () => {
  const payload = concatBytes([...encodeRequest('GET_LORA', { flags: 1 }), new Uint8Array([0])]);
  assert.throws(() => decodeRequest('GET_LORA', payload), /GET_LORA request: 1 unexpected bytes after the last field/);
});

test('a u64 above 2^53 - 1 is refused by name instead of silently rounded', () => {
  const w = new ByteWriter().u64(2n ** 53n, 'weight_bytes');
  assert.throws(
    () => new ByteReader(w.toBytes(), 'LOAD_STAGE reply').u64('weight_bytes'),
    /LOAD_STAGE reply: weight_bytes = 9007199254740992 is above 2\^53 - 1/,
  );
  assert.equal(new ByteReader(new ByteWriter().u64(2 ** 53 - 1).toBytes()).u64('x'), 2 ** 53 - 1);
  assert.throws(() => new ByteWriter().u64(2 ** 53, 'memory_budget_bytes'), /memory_budget_bytes must be .* safe integer/);
});

test('tensor shape, dtype and rank are checked on encode', () => {
  assert.throws(() => makeTensor('f32', [2, 3], new Float32Array(5)), /dims \[2, 3\] hold 6 elements, data has 5/);
  assert.throws(() => makeTensor('f32', [2], new Int32Array(2)), /dtype f32 needs a Float32Array, got Int32Array/);
  assert.throws(() => makeTensor('u8', [1, 1, 1, 1, 1], new Uint8Array(1)), /5 dims .* at most 4/);
  const input = makeTensor('i32', [1, 2], new Int32Array([1, 2]));
  assert.throws(
    () => encodeRequest('FORWARD', { microId: 0, flags: 0, input, targets: input }),
    /targets and mask go together/,
  );
});

test('a tensor whose dims promise more data than the payload holds fails before allocating', () => {
  const w = new ByteWriter().u32(0).u32(0).u8(0).u8(4).u16(0).u32(65536).u32(65536).u32(65536).u32(65536);
  w.u8(0);
  assert.throws(
    () => decodeRequest('FORWARD', w.toBytes()),
    /input: f32 \[65536, 65536, 65536, 65536\] needs \d+ data bytes, the payload has 1 left/,
  );
});

test('unknown dtype codes, ndim > 4, non-zero reserved and has_* > 1 are errors', () => {
  const head = () => new ByteWriter().u32(1).f32(1);
  assert.throws(() => decodeRequest('BACKWARD', head().u8(2).toBytes()), /has_grad must be 0 or 1, got 2/);
  assert.throws(() => decodeRequest('BACKWARD', head().u8(1).u8(9).toBytes()), /grad_output: unknown dtype code 9/);
  assert.throws(() => decodeRequest('BACKWARD', head().u8(1).u8(0).u8(5).toBytes()), /grad_output: ndim 5, at most 4/);
  assert.throws(() => decodeRequest('BACKWARD', head().u8(1).u8(0).u8(0).u16(1).toBytes()), /reserved field is 1/);
});

test('invalid UTF-8 in a string is an error naming the field', () => {
  const w = new ByteWriter().u32(1).u32(2).bytes(new Uint8Array([0xc3, 0x28]));
  assert.throws(() => decodeRequest('HELLO', w.toBytes()), ProtocolError);
  assert.throws(() => decodeRequest('HELLO', w.toBytes()), /token is not valid UTF-8/);
});

test('large tensors are passed by reference and still encode correctly', () => {
  const data = new Float32Array(100_000).map((_, i) => i * 0.5 - 7);
  const hidden = makeTensor('f32', [1, 1000, 100], data);
  const chunks = encodeReply('FORWARD', { outputKind: 0, hidden });
  assert.ok(chunks.some((c) => c.buffer === data.buffer), 'the tensor data should not be copied');
  const back = decodeReply('FORWARD', bytes(chunks));
  assert.equal(back.outputKind, 0);
  if (back.outputKind === 0) assert.deepStrictEqual(back.hidden.data, data);
});

test('f32 <-> f16 tensor conversion keeps dims and rounds values', () => {
  const t = makeTensor('f32', [2, 2], new Float32Array([1, -2.5, 0.1, 70000]));
  const h = tensorToF16(t);
  assert.equal(h.dtype, 'f16');
  assert.deepStrictEqual(h.dims, [2, 2]);
  assert.deepStrictEqual([...h.data], [0x3c00, 0xc100, 0x2e66, 0x7c00]);
  const back = tensorToF32(h);
  assert.deepStrictEqual([...back.data], [1, -2.5, 0.0999755859375, Infinity]);
  assert.throws(() => tensorToF16(makeTensor('i32', [1], new Int32Array(1))), /only f32 tensors convert to f16/);
});
