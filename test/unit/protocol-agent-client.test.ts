// Tests AgentClient against a scripted protocol peer: a net.Server that answers with literal fixture bytes
// (hello, errors, replies), closes mid-request, stays silent, or sends garbage. Not a fake agent: no training logic.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentClient, AgentConnectionError, AgentError, parseOpenclDeviceType } from '../../electron/core/protocol/agent-client.js';
import { encodeReply, type Tensor } from '../../electron/core/protocol/messages.js';
import { encodeFrame, ProtocolError } from '../../electron/core/protocol/wire.js';
import { findRepoRoot as repoRoot } from '../../electron/core/paths.js';

const FIXTURES = join(repoRoot(), 'test', 'fixtures', 'protocol');
const TOKEN = '9f3c1a7e5b2d4068a1c3e5f7092b4d6f'; // the token inside hello_request.bin
const LABEL = 'R58N-TEST';

/** A fixture frame with its request id replaced (the client numbers its requests 1, 2, 3, ...). */
function fixture(name: string, requestId: number): Buffer {
  const b = Buffer.from(readFileSync(join(FIXTURES, `${name}.bin`)));
  b.writeUInt32LE(requestId, 8);
  return b;
}

interface Received {
  kind: number;
  requestId: number;
  raw: Buffer;
}

/** The agent side of one connection, scripted by the test; frames are cut by reading the header by hand. */
class Peer {
  private buffered = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  async nextFrame(): Promise<Received> {
    for (;;) {
      if (this.buffered.length >= 16) {
        const total = 16 + this.buffered.readUInt32LE(12);
        if (this.buffered.length >= total) {
          const raw = this.buffered.subarray(0, total);
          this.buffered = this.buffered.subarray(total);
          return { kind: raw.readUInt16LE(4), requestId: raw.readUInt32LE(8), raw };
        }
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Reads HELLO, checks it is byte-for-byte the fixture request, answers with the fixture reply. */
  async handshake(): Promise<void> {
    const hello = await this.nextFrame();
    assert.deepStrictEqual(hello.raw, fixture('hello_request', hello.requestId));
    this.socket.write(fixture('hello_reply', hello.requestId));
  }
}

/** Starts a one-connection server running `script`, connects a client to it; returns both ends. */
async function session(
  script: (peer: Peer) => Promise<void>,
  opts: { timeoutMs?: number; token?: string; pipelineDepth?: number } = {},
): Promise<{ client: Promise<AgentClient>; scriptDone: Promise<void>; server: net.Server }> {
  let resolveDone!: (p: Promise<void>) => void;
  const scriptStarted = new Promise<Promise<void>>((r) => (resolveDone = r));
  const server = net.createServer((socket) => resolveDone(script(new Peer(socket))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const socket = net.connect(port, '127.0.0.1');
  const token = opts.token ?? TOKEN;
  const client = AgentClient.connect(socket, { token, label: LABEL, timeoutMs: opts.timeoutMs ?? 2000, pipelineDepth: opts.pipelineDepth });
  const scriptDone = scriptStarted.then((p) => p).finally(() => server.close());
  return { client, scriptDone, server };
}

test('HELLO goes out as the fixture bytes and the capabilities come from the fixture reply', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    await peer.closed;
  });
  const client = await s.client;
  assert.deepStrictEqual(client.capabilities, {
    agentVersion: '0.1.0-dev+g1a2b3c4',
    protocolVersion: 1,
    abi: 'arm64-v8a',
    cpuThreads: 8,
    memoryBudgetBytes: 0x1_7f3a_2b1c,
    backends: ['cpu(neon, dotprod x4)', 'opencl(QUALCOMM Adreno(TM) 740 (OpenCL 3.0))'],
    backendDetails: [
      { name: 'cpu', detail: 'neon, dotprod x4' },
      { name: 'opencl', detail: 'QUALCOMM Adreno(TM) 740 (OpenCL 3.0)' },
    ],
    opencl: true,
    openclDeviceType: 'gpu',
  });
  client.close();
  await s.scriptDone;
  assert.equal(client.isOpen, false);
});

test('AUTH_FAILED rejects connect with an AgentError carrying the code and the agent message', async () => {
  const s = await session(async (peer) => {
    const hello = await peer.nextFrame();
    peer.socket.end(fixture('error_auth_failed', hello.requestId));
  });
  await assert.rejects(s.client, (e: unknown) => {
    assert.ok(e instanceof AgentError);
    assert.equal(e.code, 3);
    assert.equal(e.codeName, 'AUTH_FAILED');
    assert.equal(e.command, 'HELLO');
    assert.equal(e.closesConnection, true);
    assert.match(e.message, /^agent on R58N-TEST refused HELLO: AUTH_FAILED: token does not match --token-file .*tokén/u);
    assert.match(e.message, /does not match the agent's --token-file/);
    return true;
  });
  await s.scriptDone;
});

test('the agent closing the connection mid-request rejects with a message naming device and command', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const req = await peer.nextFrame();
    assert.deepStrictEqual(req.raw, fixture('forward_request_first', req.requestId));
    peer.socket.destroy();
  });
  const client = await s.client;
  await assert.rejects(
    client.forward({
      microId: 0x00010002,
      flags: 1,
      input: { dtype: 'i32', dims: [2, 3], data: new Int32Array([1, 15043, 3186, 31999, 0, 7]) },
    }),
    (e: unknown) => {
      assert.ok(e instanceof AgentConnectionError);
      assert.equal(e.reason, 'closed');
      assert.equal(e.message, 'agent on R58N-TEST closed the connection during FORWARD (request 2)');
      return true;
    },
  );
  await assert.rejects(client.stats(), /cannot send STATS: agent on R58N-TEST closed the connection during FORWARD/);
  await s.scriptDone;
});

test('a reply cut off by the agent closing says how much of the frame arrived', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const req = await peer.nextFrame();
    const reply = fixture('forward_reply_loss', req.requestId);
    peer.socket.end(reply.subarray(0, 40));
  });
  const client = await s.client;
  const input = { dtype: 'f32' as const, dims: [1, 1], data: new Float32Array([0.5]) };
  await assert.rejects(
    client.forward({ microId: 5, flags: 3, input }),
    new RegExp(
      'agent on R58N-TEST closed the connection during FORWARD \\(request 2\\) ' +
        '\\(stream from agent on R58N-TEST ended inside a frame: 24 of \\d+ payload bytes received\\)',
    ),
  );
  await s.scriptDone;
});

test('a non-closing ERROR rejects that request only; the next request is answered', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const setLora = await peer.nextFrame();
    assert.deepStrictEqual(setLora.raw, fixture('set_lora_request', setLora.requestId));
    peer.socket.write(fixture('error_bad_argument', setLora.requestId));
    const stats = await peer.nextFrame();
    assert.deepStrictEqual(stats.raw, fixture('stats_request', stats.requestId));
    peer.socket.write(fixture('stats_reply', stats.requestId));
    await peer.closed;
  });
  const client = await s.client;
  const fixtureJson = JSON.parse(readFileSync(join(FIXTURES, 'set_lora_request.json'), 'utf8'));
  const tensors = fixtureJson.fields.tensors.map((t: { name: string; tensor: { dims: number[]; data: number[] } }) => ({
    name: t.name,
    tensor: { dtype: 'f32', dims: t.tensor.dims, data: Float32Array.from(t.tensor.data) },
  }));
  await assert.rejects(client.setLora(tensors), (e: unknown) => {
    assert.ok(e instanceof AgentError);
    assert.equal(e.codeName, 'BAD_ARGUMENT');
    assert.equal(e.closesConnection, false);
    assert.match(e.message, /^agent on R58N-TEST refused SET_LORA: BAD_ARGUMENT: SET_LORA: model\.layers\.4/);
    return true;
  });
  assert.equal(client.isOpen, true);
  const stats = await client.stats();
  assert.equal(stats.bytesOut, 0x4_0506_0708);
  assert.equal(stats.rssBytes, 0x1_0a0b_0c0d);
  assert.equal(stats.primaryBusyUs, 0x1_c000_0f21);
  assert.equal(stats.secondaryBusyUs, 0x1_0203_0a05);
  assert.equal(stats.temperatureMillicelsius, 47250);
  assert.equal(stats.temperatureZone, 'cpu-1-4-usr');
  client.close();
  await s.scriptDone;
});

test('a request the agent never answers times out, closes the connection, and later calls fail fast', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    await peer.nextFrame(); // GRAD_NORM: never answered
    await peer.closed; // the client must hang up
  });
  const client = await s.client;
  const started = Date.now();
  await assert.rejects(client.gradNorm({ timeoutMs: 100 }), (e: unknown) => {
    assert.ok(e instanceof AgentConnectionError);
    assert.equal(e.reason, 'timeout');
    assert.match(e.message, /^agent on R58N-TEST did not answer GRAD_NORM \(request 2\) within 100 ms/);
    return true;
  });
  assert.ok(Date.now() - started < 1500);
  await s.scriptDone;
  await assert.rejects(client.zeroGrad(), /cannot send ZERO_GRAD: agent on R58N-TEST did not answer GRAD_NORM/);
});

test('HELLO times out when nothing answers (an adb tunnel accepts even with no agent behind it)', async () => {
  const s = await session(async (peer) => {
    await peer.closed;
  }, { timeoutMs: 100 });
  await assert.rejects(s.client, /agent on R58N-TEST did not answer HELLO \(request 1\) within 100 ms/);
  await s.scriptDone;
});

test('with pipelineDepth 1 requests are sent one at a time, in call order', async () => {
  const order: string[] = [];
  const s = await session(async (peer) => {
    await peer.handshake();
    const first = await peer.nextFrame();
    order.push(`got ${first.kind}`);
    // The second request must not be on the wire before the first is answered.
    await new Promise((r) => setTimeout(r, 50));
    const pending = peer.nextFrame();
    let early = false;
    void pending.then(() => (early = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(early, false, 'second request sent before the first reply');
    peer.socket.write(fixture('zero_grad_reply', first.requestId));
    const second = await pending;
    order.push(`got ${second.kind}`);
    assert.equal(second.requestId, first.requestId + 1);
    peer.socket.write(fixture('grad_norm_reply', second.requestId));
    await peer.closed;
  }, { pipelineDepth: 1 });
  const client = await s.client;
  const [zero, norm] = await Promise.all([client.zeroGrad(), client.gradNorm()]);
  assert.equal(zero, undefined);
  assert.equal(norm, 0.12345678901234566);
  assert.deepStrictEqual(order, ['got 11', 'got 6']);
  client.close();
  await s.scriptDone;
});

test('a reply with a wrong request id or kind, or bad magic, is a protocol error that closes', async () => {
  const cases: [string, (reqId: number) => Buffer, RegExp][] = [
    ['wrong id', (id) => fixture('stats_reply', id + 7), /answered request \d+ while request 2 \(STATS\) was outstanding/],
    ['wrong kind', (id) => fixture('grad_norm_reply', id), /answered STATS \(request 2\) with a GRAD_NORM reply frame/],
    ['bad magic', (id) => Buffer.concat([Buffer.from('HTTP'), fixture('stats_reply', id).subarray(4)]), /0x50545448/],
    [
      'ERROR for another request id',
      () => fixture('error_bad_argument', 0),
      /sent ERROR BAD_ARGUMENT: SET_LORA: .* for request 0, while STATS \(request 2\) was outstanding/,
    ],
  ];
  for (const [what, reply, pattern] of cases) {
    const s = await session(async (peer) => {
      await peer.handshake();
      const req = await peer.nextFrame();
      peer.socket.write(reply(req.requestId));
      await peer.closed;
    });
    const client = await s.client;
    await assert.rejects(client.stats(), (e: unknown) => {
      assert.ok(e instanceof AgentConnectionError, what);
      assert.equal(e.reason, 'protocol', what);
      assert.match(e.message, pattern, what);
      return true;
    });
    await s.scriptDone;
  }
});

test('by default two requests are on the wire: the third goes when the first is answered, replies keep their order', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const first = await peer.nextFrame();
    const second = await peer.nextFrame(); // sent before the first is answered
    assert.deepStrictEqual([first.kind, second.kind], [0x000b, 0x0006]);
    const pending = peer.nextFrame();
    let early = false;
    void pending.then(() => (early = true));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(early, false, 'third request sent while two were unanswered');
    peer.socket.write(fixture('zero_grad_reply', first.requestId));
    const third = await pending;
    assert.equal(third.kind, 0x0009);
    peer.socket.write(fixture('grad_norm_reply', second.requestId));
    peer.socket.write(fixture('stats_reply', third.requestId));
    await peer.closed;
  });
  const client = await s.client;
  const settled: string[] = [];
  const results = await Promise.all([
    client.zeroGrad().then((r) => (settled.push('ZERO_GRAD'), r)),
    client.gradNorm().then((r) => (settled.push('GRAD_NORM'), r)),
    client.stats().then((r) => (settled.push('STATS'), r)),
  ]);
  assert.deepStrictEqual(settled, ['ZERO_GRAD', 'GRAD_NORM', 'STATS']);
  assert.equal(results[1], 0.12345678901234566);
  assert.equal(results[2].temperatureMillicelsius, 47250);
  client.close();
  await s.scriptDone;
});

test('after a reply with a request still unanswered and nothing to send, the client sends one NOP; never otherwise', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const first = await peer.nextFrame();
    const second = await peer.nextFrame();
    peer.socket.write(fixture('zero_grad_reply', first.requestId));
    // The client has nothing queued: the next frame must be the NOP fixture (kind 0x0010, request id 0, no payload).
    const nop = await peer.nextFrame();
    assert.deepStrictEqual(nop.raw, readFileSync(join(FIXTURES, 'nop_request.bin')));
    peer.socket.write(fixture('grad_norm_reply', second.requestId));
    // Nothing on the wire now: no NOP follows this reply; the next frame is the STATS sent after it.
    const third = await peer.nextFrame();
    assert.equal(third.kind, 0x0009);
    peer.socket.write(fixture('stats_reply', third.requestId));
    await peer.closed;
  });
  const client = await s.client;
  await Promise.all([client.zeroGrad(), client.gradNorm()]);
  await new Promise((r) => setTimeout(r, 30)); // time for a wrong NOP to go out before STATS
  await client.stats();
  client.close();
  await s.scriptDone;
});

test("a request behind a slow one gets its full timeout from the slow one's reply; a failure rejects both on the wire", async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const slow = await peer.nextFrame();
    await peer.nextFrame(); // STATS, sent at once and never answered
    await new Promise((r) => setTimeout(r, 150)); // longer than STATS's own limit, which must not run yet
    peer.socket.write(fixture('zero_grad_reply', slow.requestId));
    await peer.closed;
  });
  const client = await s.client;
  const slow = client.zeroGrad({ timeoutMs: 1000 });
  const started = Date.now();
  const behind = client.stats({ timeoutMs: 100 });
  await slow;
  const slowMs = Date.now() - started;
  await assert.rejects(behind, (e: unknown) => {
    assert.ok(e instanceof AgentConnectionError);
    assert.equal(e.reason, 'timeout');
    assert.match(e.message, /did not answer STATS \(request 3\) within 100 ms/);
    return true;
  });
  assert.ok(Date.now() - started >= slowMs + 90, 'STATS timed out before its 100 ms had run from the previous reply');
  await s.scriptDone;

  // The connection closing with two on the wire: the head gets the reason, the one behind says it was not answered.
  const t = await session(async (peer) => {
    await peer.handshake();
    await peer.nextFrame();
    await peer.nextFrame();
    peer.socket.destroy();
  });
  const c2 = await t.client;
  const head = c2.gradNorm();
  const second = c2.stats();
  await assert.rejects(head, /agent on R58N-TEST closed the connection during GRAD_NORM \(request 2\)/);
  await assert.rejects(second, /STATS \(request 3\) was not answered: agent on R58N-TEST closed the connection during GRAD_NORM/);
  await t.scriptDone;
});

test('aborting a queued request leaves the connection open; aborting one on the wire closes it', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const first = await peer.nextFrame(); // STATS, left unanswered until the abort closes the connection
    assert.equal(first.kind, 0x0009);
    await peer.closed;
  });
  const client = await s.client;
  const inFlight = new AbortController();
  const queued = new AbortController();
  const a = client.stats();
  const b = client.gradNorm({ signal: inFlight.signal }); // on the wire behind STATS (pipelineDepth 2)
  const c = client.getLora({ includeGrads: true, signal: queued.signal });
  queued.abort();
  await assert.rejects(c, /GET_LORA to agent on R58N-TEST was aborted while it waited in the queue/);
  assert.equal(client.isOpen, true);
  inFlight.abort();
  await assert.rejects(b, (e: unknown) => e instanceof AgentConnectionError && e.reason === 'aborted');
  await assert.rejects(a, (e: unknown) => e instanceof AgentConnectionError && e.reason === 'aborted');
  assert.equal(client.isOpen, false);
  await s.scriptDone;
});

test('pipelineDepth below 1 is refused', async () => {
  const socket = new net.Socket();
  await assert.rejects(AgentClient.connect(socket, { token: TOKEN, pipelineDepth: 0 }), /pipelineDepth must be an integer >= 1, got 0/);
  socket.destroy();
});

test('shutdown resolves on the acknowledgement and leaves the client closed', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const req = await peer.nextFrame();
    assert.deepStrictEqual(req.raw, fixture('shutdown_request', req.requestId));
    peer.socket.end(fixture('shutdown_reply', req.requestId));
  });
  const client = await s.client;
  await client.shutdown();
  assert.equal(client.isOpen, false);
  assert.equal((await client.whenClosed()).reason, 'shut-down');
  await s.scriptDone;
});

test('an older agent: HELLO without the OpenCL device type and STATS without the per-backend fields still work', async () => {
  const s = await session(async (peer) => {
    const hello = await peer.nextFrame();
    peer.socket.write(fixture('hello_reply_short', hello.requestId));
    const stats = await peer.nextFrame();
    peer.socket.write(fixture('stats_reply_short', stats.requestId));
    await peer.closed;
  });
  const client = await s.client;
  assert.equal(client.capabilities.opencl, true);
  assert.equal(client.capabilities.openclDeviceType, null);
  const stats = await client.stats();
  assert.equal(stats.busyUs, 0x2_0000_1234);
  assert.deepStrictEqual(
    [stats.primaryBusyUs, stats.secondaryBusyUs, stats.temperatureMillicelsius, stats.temperatureZone],
    [undefined, undefined, undefined, undefined],
  );
  client.close();
  await s.scriptDone;
});

test('HELLO opencl_device_type: known types kept, no OpenCL is null, an unknown name is other', () => {
  assert.equal(parseOpenclDeviceType('cpu'), 'cpu');
  assert.equal(parseOpenclDeviceType('gpu'), 'gpu');
  assert.equal(parseOpenclDeviceType('accelerator'), 'accelerator');
  assert.equal(parseOpenclDeviceType('custom'), 'other');
  assert.equal(parseOpenclDeviceType(''), null);
  assert.equal(parseOpenclDeviceType(undefined), null);
});

test('a HELLO reply with another protocol version is refused', async () => {
  const s = await session(async (peer) => {
    const hello = await peer.nextFrame();
    const reply = fixture('hello_reply', hello.requestId);
    // protocol_version follows the agent_version string (u32 length + bytes) at payload offset 0.
    const at = 16 + 4 + reply.readUInt32LE(16);
    reply.writeUInt32LE(2, at);
    peer.socket.write(reply);
    await peer.closed;
  });
  await assert.rejects(
    s.client,
    /agent on R58N-TEST \(version 0\.1\.0-dev\+g1a2b3c4\) speaks protocol version 2, this host speaks 1/,
  );
  await s.scriptDone;
});

/** The "fields" of a fixture's .json. */
function fields(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')).fields;
}

function tensor(t: unknown): Tensor {
  const j = t as { dtype: 'f32' | 'i32'; dims: number[]; data: number[] };
  if (j.dtype === 'i32') return { dtype: 'i32', dims: j.dims, data: Int32Array.from(j.data) };
  assert.equal(j.dtype, 'f32');
  return { dtype: 'f32', dims: j.dims, data: Float32Array.from(j.data) };
}

test('zoForward, zoStep, profile and setSplit send the fixture bytes and return the fixture replies', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    for (const [request, reply] of [
      ['zo_forward_request_last', 'zo_forward_reply_loss'],
      ['zo_step_request', 'zo_step_reply'],
      ['profile_request', 'profile_reply'],
      ['set_split_request', 'set_split_reply'],
    ] as const) {
      const req = await peer.nextFrame();
      assert.deepStrictEqual(req.raw, fixture(request, req.requestId), request);
      peer.socket.write(fixture(reply, req.requestId));
    }
    await peer.closed;
  });
  const client = await s.client;
  const zf = fields('zo_forward_request_last');
  const zo = await client.zoForward({
    seed: zf.seed as number,
    step: zf.step as number,
    queries: zf.queries as number,
    firstQuery: zf.first_query as number,
    eps: zf.eps as number,
    flags: zf.flags as number,
    input: tensor(zf.input),
    targets: tensor(zf.targets),
    mask: tensor(zf.mask),
  });
  const zr = fields('zo_forward_reply_loss');
  assert.deepStrictEqual(zo, { outputKind: 1, copyLossSums: zr.copy_loss_sums, copyWeightSums: zr.copy_weight_sums });

  const zs = fields('zo_step_request');
  const stepped = await client.zoStep({
    seed: zs.seed as number,
    step: zs.step as number,
    lr: zs.lr as number,
    g: zs.g as number[],
  });
  assert.equal(stepped, undefined);

  const profile = await client.profile({ batch: 4, seqLen: 256, reps: 5 });
  assert.deepStrictEqual(profile, JSON.parse(fields('profile_reply').profile_json as string));
  assert.deepStrictEqual(profile.shape, { batch: 4, seqLen: 256 });
  assert.deepStrictEqual(
    profile.backends.map((b) => b.name),
    ['cpu', 'opencl'],
  );
  assert.equal(profile.layers[1]!.forwardMs, 8.0);
  assert.equal(profile.mlp[0]!.backwardMsPer32Cols, 0.125);

  const layers = fields('set_split_request').layers as { gpu_kv_groups: number; gpu_mlp_cols: number }[];
  await client.setSplit(layers.map((l) => ({ gpuKvGroups: l.gpu_kv_groups, gpuMlpCols: l.gpu_mlp_cols })));
  client.close();
  await s.scriptDone;
});

test('a PROFILE reply that breaks the documented schema rejects that call only', async () => {
  const s = await session(async (peer) => {
    await peer.handshake();
    const req = await peer.nextFrame();
    const doc = JSON.parse(fields('profile_reply').profile_json as string);
    doc.layers[0].forwardMs = -1;
    doc.heads[1].backend = 'vulkan';
    const payload = encodeReply('PROFILE', { profileJson: JSON.stringify(doc) });
    peer.socket.write(encodeFrame(0x800e, req.requestId, payload));
    const stats = await peer.nextFrame();
    peer.socket.write(fixture('stats_reply', stats.requestId));
    await peer.closed;
  });
  const client = await s.client;
  await assert.rejects(client.profile({ batch: 1, seqLen: 8, reps: 1 }), (e: unknown) => {
    assert.ok(e instanceof ProtocolError);
    assert.match(e.message, /^PROFILE reply from agent on R58N-TEST does not match docs\/protocol\.md: /);
    assert.match(e.message, /layers\.0\.forwardMs: /);
    assert.match(e.message, /heads\.1\.backend: backend 'vulkan' is not one of backends \(cpu, opencl\)/);
    return true;
  });
  assert.equal(client.isOpen, true);
  assert.equal((await client.stats()).bytesOut, 0x4_0506_0708);
  client.close();
  await s.scriptDone;
});
