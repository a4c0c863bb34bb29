// Unit tests for the main-process IPC bridge (electron/shell/ipc.ts) with fake ipcMain, webContents and service:
// sender checks, validation errors, event forwarding, unsubscribe. Runs in plain Node; no Electron.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CallReply, ConfidantService, EventMessage } from '../../electron/core/api/contract.js';
import type { TrainEvent } from '../../electron/core/api/types.js';
import { isTrustedSender, registerBridge, type InvokeEventLike, type IpcMainLike } from '../../electron/shell/ipc.js';

const RENDERER_URL = 'file:///opt/Confidant/resources/app/build/renderer/index.html';

function fakeIpcMain() {
  const handlers = new Map<string, (event: InvokeEventLike, ...args: unknown[]) => Promise<unknown>>();
  const removed: string[] = [];
  const ipcMain: IpcMainLike = {
    handle(channel, listener) {
      assert.ok(!handlers.has(channel), `second handler for ${channel}`);
      handlers.set(channel, listener);
    },
    removeHandler(channel) {
      removed.push(channel);
      handlers.delete(channel);
    },
  };
  const invoke = (url: string | null, method: unknown, params?: unknown, parent: unknown = null) => {
    const h = handlers.get('confidant:call');
    assert.ok(h, 'handler registered');
    return h({ senderFrame: url === null ? null : { url, parent } }, method, params) as Promise<CallReply>;
  };
  return { ipcMain, handlers, removed, invoke };
}

function fakeService() {
  const calls: { method: string; params: unknown }[] = [];
  const listeners = new Set<(m: EventMessage) => void>();
  const service: ConfidantService = {
    async listDevices() {
      calls.push({ method: 'listDevices', params: undefined });
      return [];
    },
    async probeDevice(params) {
      calls.push({ method: 'probeDevice', params });
      return { abi: 'x86_64', cpuThreads: 2, backends: ['cpu(avx2 x2)'], opencl: false, openclDeviceType: null };
    },
    async startVirtualPhones(params) {
      calls.push({ method: 'startVirtualPhones', params });
      return [];
    },
    inspectModel: async () => {
      throw new Error('config.json is missing in /m: point at a Hugging Face model folder');
    },
    previewDataset: async (p) => ({ path: p.path, samples: [], count: 0, errors: [] }),
    planTraining: async () => Promise.reject(new Error('no phones here')),
    startTraining: async () => ({ runId: 'run-1' }),
    stopTraining: async () => {},
    pauseTraining: async () => {},
    listRuns: async () => [],
    exportAdapter: async (p) => ({ outDir: p.outDir, files: [] }),
    generate: async () => ({ text: '' }),
    stopGenerate: async () => {},
    openRun: async () => Promise.reject(new Error('no runs here')),
    defaults: async () => ({ modelPath: 'm', datasetPath: 'd' }),
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const emit = (data: TrainEvent) => {
    for (const l of listeners) l({ event: 'train-event', data });
  };
  return { service, calls, listeners, emit };
}

function fakeSink() {
  const sent: { channel: string; message: EventMessage }[] = [];
  let destroyed = false;
  return {
    sent,
    destroy: () => (destroyed = true),
    sink: { send: (channel: string, message: EventMessage) => sent.push({ channel, message }), isDestroyed: () => destroyed },
  };
}

const phase = (runId: string): TrainEvent => ({ type: 'phase', runId, phase: 'plan', detail: '2 stages', timeMs: 1 });

test('isTrustedSender accepts only our renderer document', () => {
  assert.equal(isTrustedSender(RENDERER_URL, RENDERER_URL), true);
  assert.equal(isTrustedSender(`${RENDERER_URL}#/train`, RENDERER_URL), true);
  assert.equal(isTrustedSender(`${RENDERER_URL}?x=1`, RENDERER_URL), true);
  assert.equal(isTrustedSender('file:///tmp/evil/index.html', RENDERER_URL), false);
  assert.equal(isTrustedSender('https://example.com/', RENDERER_URL), false);
  assert.equal(isTrustedSender(`${RENDERER_URL}.evil.html`, RENDERER_URL), false);
  assert.equal(isTrustedSender('about:blank', RENDERER_URL), false);
  assert.equal(isTrustedSender('', RENDERER_URL), false);
  assert.equal(isTrustedSender(null, RENDERER_URL), false);
  assert.equal(isTrustedSender(undefined, RENDERER_URL), false);
});

test('a call from another frame is refused and never reaches the service', async () => {
  const ipc = fakeIpcMain();
  const svc = fakeService();
  const logs: string[] = [];
  registerBridge({ ipcMain: ipc.ipcMain, service: svc.service, rendererUrl: RENDERER_URL, sink: fakeSink().sink, log: (l) => logs.push(l) });

  for (const url of ['https://evil.example/', 'file:///home/u/Downloads/page.html', null]) {
    const reply = await ipc.invoke(url, 'startVirtualPhones', { count: 2 });
    assert.equal(reply.ok, false);
    assert.equal(!reply.ok && reply.error.code, 'forbidden');
  }
  const fromSubframe = await ipc.invoke(RENDERER_URL, 'startVirtualPhones', { count: 2 }, { url: RENDERER_URL });
  assert.equal(!fromSubframe.ok && fromSubframe.error.code, 'forbidden', 'our URL in a subframe is still refused');
  assert.equal(svc.calls.length, 0);
  assert.equal(logs.length, 4);
  assert.match(logs[0]!, /evil\.example/);
});

test('our renderer gets results; bad params get a clear error naming method and field', async () => {
  const ipc = fakeIpcMain();
  const svc = fakeService();
  registerBridge({ ipcMain: ipc.ipcMain, service: svc.service, rendererUrl: RENDERER_URL, sink: fakeSink().sink });

  assert.deepEqual(await ipc.invoke(RENDERER_URL, 'startVirtualPhones', { count: 2 }), { ok: true, result: [] });
  assert.deepEqual(svc.calls, [{ method: 'startVirtualPhones', params: { count: 2 } }]);

  const bad = await ipc.invoke(RENDERER_URL, 'startVirtualPhones', { count: 'two' });
  assert.deepEqual(bad, {
    ok: false,
    error: { code: 'bad-params', message: 'startVirtualPhones: count: count must be a whole number' },
  });

  const unknown = await ipc.invoke(RENDERER_URL, 'deleteEverything', {});
  assert.equal(!unknown.ok && unknown.error.code, 'unknown-method');
  const notString = await ipc.invoke(RENDERER_URL, 42, {});
  assert.equal(!notString.ok && notString.error.code, 'unknown-method');

  const failed = await ipc.invoke(RENDERER_URL, 'inspectModel', { path: '/m' });
  assert.deepEqual(failed, {
    ok: false,
    error: { code: 'failed', message: 'config.json is missing in /m: point at a Hugging Face model folder' },
  });
  assert.equal(svc.calls.length, 1, 'only the valid call reached the service');
});

test('service events are forwarded to the window, not to a destroyed one', () => {
  const ipc = fakeIpcMain();
  const svc = fakeService();
  const s = fakeSink();
  registerBridge({ ipcMain: ipc.ipcMain, service: svc.service, rendererUrl: RENDERER_URL, sink: s.sink });

  svc.emit(phase('run-1'));
  assert.deepEqual(s.sent, [{ channel: 'confidant:event', message: { event: 'train-event', data: phase('run-1') } }]);
  s.destroy();
  svc.emit(phase('run-1'));
  assert.equal(s.sent.length, 1);
});

test('dispose unsubscribes from the service and removes the handler (idempotent)', () => {
  const ipc = fakeIpcMain();
  const svc = fakeService();
  const s = fakeSink();
  const dispose = registerBridge({ ipcMain: ipc.ipcMain, service: svc.service, rendererUrl: RENDERER_URL, sink: s.sink });
  assert.equal(svc.listeners.size, 1);
  assert.ok(ipc.handlers.has('confidant:call'));

  dispose();
  dispose();
  assert.equal(svc.listeners.size, 0);
  assert.deepEqual(ipc.removed, ['confidant:call']);
  svc.emit(phase('run-1'));
  assert.equal(s.sent.length, 0);

  // A second registration after dispose works (e.g. a window re-created on macOS activate).
  registerBridge({ ipcMain: ipc.ipcMain, service: svc.service, rendererUrl: RENDERER_URL, sink: s.sink });
  assert.equal(svc.listeners.size, 1);
});
