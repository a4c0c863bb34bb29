// Unit tests for the headless server (electron/server/server.ts): token on HTTP and WebSocket, Origin and Host
// checks, static files with CSP, the JSON call protocol and pushed events. The service is an in-test double.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { RENDERER_CSP_HEADER, type ConfidantService, type EventMessage } from '../../electron/core/api/contract.js';
import type { TrainEvent } from '../../electron/core/api/types.js';
import { startServer, tokensEqual, type RunningServer } from '../../electron/server/server.js';

// --- a small service double: records calls, emits events on demand ---------------------------------------------
const listeners = new Set<(m: EventMessage) => void>();
const calls: { method: string; params: unknown }[] = [];
const service: ConfidantService = {
  listDevices: async () => [],
  probeDevice: async () => Promise.reject(new Error('not used here')),
  startVirtualPhones: async (p) => {
    calls.push({ method: 'startVirtualPhones', params: p });
    return [];
  },
  inspectModel: async (p) => ({ path: p.path, modelType: 'llama', numLayers: 5, hiddenSize: 64, intermediateSize: 172, vocabSize: 512, paramCount: 260_000, source: 'hf' as const, numHeads: 8, numKvHeads: 4, storage: [['F32', 260_000]] as [string, number][], ropeScaling: null, slidingWindow: null, tiedEmbeddings: true, attentionBias: false }),
  previewDataset: async () => {
    throw new Error('data.jsonl does not exist: check the path');
  },
  planTraining: async () => Promise.reject(new Error('no phones here')),
  startTraining: async () => ({ runId: 'run-1' }),
  stopTraining: async () => {},
  pauseTraining: async () => {},
  listRuns: async () => [],
  exportAdapter: async (p) => ({ outDir: p.outDir, files: [] }),
  generate: async () => ({ text: 'hello' }),
  stopGenerate: async () => {},
  openRun: async () => Promise.reject(new Error('no runs here')),
  defaults: async () => ({ modelPath: 'models/stories260K', datasetPath: 'data/tiny.jsonl' }),
  onEvent(l) {
    listeners.add(l);
    return () => listeners.delete(l);
  },
};
const emit = (data: TrainEvent) => {
  for (const l of listeners) l({ event: 'train-event', data });
};

let staticDir = '';
let server: RunningServer;
const TOKEN = 'a'.repeat(64);

before(async () => {
  staticDir = await mkdtemp(join(tmpdir(), 'confidant-server-test-'));
  await mkdir(join(staticDir, 'assets'));
  await writeFile(join(staticDir, 'index.html'), '<!doctype html><title>t</title>');
  await writeFile(join(staticDir, 'assets', 'app.js'), 'console.log(1)');
  await writeFile(join(staticDir, '..', 'secret-next-to-static.txt'), 'secret').catch(() => {});
  server = await startServer({ service, staticDir, token: TOKEN });
});

after(async () => {
  await server.close();
  await rm(staticDir, { recursive: true, force: true });
  await rm(join(staticDir, '..', 'secret-next-to-static.txt'), { force: true });
});

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
function get(path: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.origin}${path}`, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a WebSocket; resolves with the socket or with the HTTP status the upgrade was refused with. */
function openWs(path: string, opts: { origin?: string; headers?: Record<string, string> } = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${server.origin.replace('http', 'ws')}${path}`, { origin: opts.origin, headers: opts.headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

function nextMessage(ws: WebSocket, pred: (m: any) => boolean = () => true): Promise<any> {
  return new Promise((resolve) => {
    const on = (raw: Buffer) => {
      const m = JSON.parse(raw.toString());
      if (pred(m)) {
        ws.off('message', on);
        resolve(m);
      }
    };
    ws.on('message', on);
  });
}

async function rpc(ws: WebSocket, id: number | string, method: unknown, params?: unknown): Promise<any> {
  const reply = nextMessage(ws, (m) => m.id === id);
  ws.send(JSON.stringify({ id, method, params }));
  return reply;
}

test('the printed URL is loopback with a 64-hex-digit token by default', async () => {
  const s = await startServer({ service, staticDir });
  try {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    assert.equal(s.url, `${s.origin}/?token=${s.token}`);
  } finally {
    await s.close();
  }
  assert.equal(tokensEqual('abc', 'abc'), true);
  assert.equal(tokensEqual('abd', 'abc'), false);
  assert.equal(tokensEqual('ab', 'abc'), false);
  await assert.rejects(startServer({ service, staticDir, token: 'short' }), /at least 16/);
});

test('HTTP without the right token gets 401', async () => {
  for (const [path, headers] of [
    ['/', {}],
    ['/index.html', {}],
    ['/assets/app.js', {}],
    ['/?token=wrong', {}],
    [`/?token=${TOKEN.slice(1)}`, {}],
    ['/', { authorization: 'Bearer nope' }],
    ['/', { cookie: `confidant_token_1=${TOKEN}` }],
  ] as const) {
    const r = await get(path, headers);
    assert.equal(r.status, 401, `${path} ${JSON.stringify(headers)}`);
    assert.equal(r.headers['content-security-policy'], RENDERER_CSP_HEADER);
    assert.doesNotMatch(r.body, /<title>/);
  }
});

test('HTTP with the token (query, bearer, or the cookie it set) serves the renderer with CSP', async () => {
  const page = await get(`/?token=${TOKEN}`);
  assert.equal(page.status, 200);
  assert.equal(page.body, '<!doctype html><title>t</title>');
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(page.headers['content-security-policy'], RENDERER_CSP_HEADER);
  assert.equal(page.headers['referrer-policy'], 'no-referrer');
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  const setCookie = String(page.headers['set-cookie']);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  const cookie = setCookie.split(';')[0]!;

  const asset = await get('/assets/app.js', { cookie });
  assert.equal(asset.status, 200);
  assert.equal(asset.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal((await get('/assets/app.js', { authorization: `Bearer ${TOKEN}` })).status, 200);
  assert.equal((await get('/missing.js', { cookie })).status, 404);
});

test('HTTP refuses path traversal and foreign Host headers', async () => {
  const auth = { authorization: `Bearer ${TOKEN}` };
  assert.equal((await get('/../secret-next-to-static.txt', auth)).status, 404);
  assert.equal((await get('/%2e%2e/secret-next-to-static.txt', auth)).status, 404);
  assert.equal((await get('/..%2fsecret-next-to-static.txt', auth)).status, 404);
  assert.equal((await get('/', { ...auth, host: 'attacker.example' })).status, 421);
});

test('a WebSocket without the token, or from another origin, is refused', async () => {
  assert.equal(await openWs('/api', { origin: server.origin }), 401);
  assert.equal(await openWs('/api?token=wrong', { origin: server.origin }), 401);
  assert.equal(await openWs(`/api?token=${TOKEN}`, { origin: 'https://evil.example' }), 403);
  assert.equal(await openWs(`/api?token=${TOKEN}`), 403, 'no Origin at all');
  assert.equal(await openWs(`/elsewhere?token=${TOKEN}`, { origin: server.origin }), 404);
});

test('the WebSocket speaks the contract: results, bad params, unknown methods, failures', async () => {
  const ws = await openWs(`/api?token=${TOKEN}`, { origin: server.origin });
  assert.ok(ws instanceof WebSocket);
  try {
    assert.deepEqual(await rpc(ws, 1, 'defaults'), { id: 1, result: { modelPath: 'models/stories260K', datasetPath: 'data/tiny.jsonl' } });
    assert.deepEqual(await rpc(ws, 2, 'startVirtualPhones', { count: 2 }), { id: 2, result: [] });
    assert.deepEqual(calls.at(-1), { method: 'startVirtualPhones', params: { count: 2 } });

    const n = calls.length;
    assert.deepEqual(await rpc(ws, 3, 'startVirtualPhones', { count: 'two' }), {
      id: 3,
      error: { code: 'bad-params', message: 'startVirtualPhones: count: count must be a whole number' },
    });
    assert.equal(calls.length, n, 'bad params never reach the service');
    const unknown = await rpc(ws, 'x', 'shutdown', {});
    assert.equal(unknown.id, 'x');
    assert.equal(unknown.error.code, 'unknown-method');
    assert.deepEqual(await rpc(ws, 4, 'previewDataset', { path: 'data.jsonl' }), {
      id: 4,
      error: { code: 'failed', message: 'data.jsonl does not exist: check the path' },
    });
    assert.deepEqual(await rpc(ws, 5, 'stopTraining', { runId: 'run-1' }), { id: 5, result: null });

    const junk = nextMessage(ws);
    ws.send('not json');
    assert.deepEqual(await junk, { id: null, error: { code: 'bad-params', message: 'message is not valid JSON' } });
    const noId = nextMessage(ws);
    ws.send(JSON.stringify({ method: 'defaults' }));
    assert.equal((await noId).error.code, 'bad-params');
  } finally {
    ws.close();
  }
});

test('a WebSocket authenticated by Bearer header works too (non-browser clients)', async () => {
  const ws = await openWs('/api', { origin: server.origin, headers: { authorization: `Bearer ${TOKEN}` } });
  assert.ok(ws instanceof WebSocket);
  assert.deepEqual((await rpc(ws, 1, 'listDevices')).result, []);
  ws.close();
});

test('train events are pushed to every client and unsubscribed when a client leaves', async () => {
  const a = await openWs(`/api?token=${TOKEN}`, { origin: server.origin });
  const b = await openWs(`/api?token=${TOKEN}`, { origin: server.origin });
  assert.ok(a instanceof WebSocket && b instanceof WebSocket);
  await rpc(a, 1, 'listDevices'); // both connections are fully set up
  await rpc(b, 1, 'listDevices');
  const before = listeners.size;

  const ev: TrainEvent = { type: 'step', runId: 'run-1', step: 1, totalSteps: 3, loss: 5.5, lr: 1e-3, tokPerSec: 900, timeMs: 7 };
  const gotA = nextMessage(a, (m) => m.event);
  const gotB = nextMessage(b, (m) => m.event);
  emit(ev);
  assert.deepEqual(await gotA, { event: 'train-event', data: ev });
  assert.deepEqual(await gotB, { event: 'train-event', data: ev });

  const closed = new Promise((r) => a.once('close', r));
  a.close();
  await closed;
  for (let i = 0; i < 50 && listeners.size !== before - 1; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(listeners.size, before - 1);
  b.close();
});

test('close() ends open sockets and frees the port', async () => {
  const s = await startServer({ service, staticDir });
  const ws = new WebSocket(`${s.origin.replace('http', 'ws')}/api?token=${s.token}`, { origin: s.origin });
  await new Promise((r) => ws.once('open', r));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await s.close();
  assert.equal(await closed, 1001);
  await assert.rejects(
    new Promise((resolve, reject) => request(s.url, resolve).on('error', reject).end()),
    /ECONNREFUSED/,
  );
});
