// Unit tests for the Electron shell wiring (electron/shell/app.ts, window.ts) with fake Electron objects: secure
// webPreferences, CSP header, refused navigation/popups/permissions, bridge lifetime. No Electron binary needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BrowserWindowConstructorOptions } from 'electron';
import { RENDERER_CSP_HEADER, type ConfidantService, type EventMessage } from '../../electron/core/api/contract.js';
import { startShell, type WindowLike } from '../../electron/shell/app.js';
import type { InvokeEventLike, IpcMainLike } from '../../electron/shell/ipc.js';
import type { SessionLike } from '../../electron/shell/window.js';

type Listener = (...args: any[]) => unknown;

function fakes() {
  const handlers = new Map<string, (event: InvokeEventLike, ...args: unknown[]) => Promise<unknown>>();
  const ipcMain: IpcMainLike = {
    handle: (channel, listener) => void handlers.set(channel, listener),
    removeHandler: (channel) => void handlers.delete(channel),
  };

  let headersListener: Parameters<SessionLike['webRequest']['onHeadersReceived']>[0] | null = null;
  let permissionHandler: ((c: unknown, p: string, cb: (g: boolean) => void) => void) | null = null;
  let permissionCheck: ((...a: any[]) => boolean) | null = null;
  const session: SessionLike = {
    webRequest: { onHeadersReceived: (l) => void (headersListener = l) },
    setPermissionRequestHandler: (h) => void (permissionHandler = h),
    setPermissionCheckHandler: (h) => void (permissionCheck = h),
  };

  const contentsListeners = new Map<string, Listener[]>();
  const windowListeners = new Map<string, Listener[]>();
  let openHandler: ((d: { url: string }) => { action: 'deny' }) | null = null;
  const sent: EventMessage[] = [];
  const loaded: string[] = [];
  let options: BrowserWindowConstructorOptions | null = null;
  const win: WindowLike = {
    webContents: {
      on: (event: string, l: Listener) => void contentsListeners.set(event, [...(contentsListeners.get(event) ?? []), l]),
      setWindowOpenHandler: (h) => void (openHandler = h),
      send: (_channel: string, m: EventMessage) => void sent.push(m),
      isDestroyed: () => false,
    },
    loadURL: async (url) => void loaded.push(url),
    once: (event: string, l: Listener) => void windowListeners.set(event, [...(windowListeners.get(event) ?? []), l]),
    on: (event: string, l: Listener) => void windowListeners.set(event, [...(windowListeners.get(event) ?? []), l]),
    show: () => {},
  };

  const listeners = new Set<(m: EventMessage) => void>();
  let disposed = 0;
  const service = {
    listDevices: async () => [],
    onEvent: (l: (m: EventMessage) => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    dispose: async () => void disposed++,
  } as unknown as ConfidantService & { dispose(): Promise<void> };

  return {
    deps: {
      ipcMain,
      session,
      createWindow: (o: BrowserWindowConstructorOptions) => {
        options = o;
        return win;
      },
      createService: async () => service,
      rendererIndexPath: '/opt/Confidant/app/build/renderer/index.html',
      preloadPath: '/opt/Confidant/app/build/electron/shell/preload.cjs',
    },
    handlers,
    get headersListener() {
      return headersListener;
    },
    get permissionHandler() {
      return permissionHandler;
    },
    get permissionCheck() {
      return permissionCheck;
    },
    get openHandler() {
      return openHandler;
    },
    get options() {
      return options;
    },
    contentsListeners,
    windowListeners,
    loaded,
    listeners,
    get disposed() {
      return disposed;
    },
  };
}

test('the window is created with the secure webPreferences and our preload', async () => {
  const f = fakes();
  await startShell(f.deps);
  const wp = f.options?.webPreferences;
  assert.ok(wp);
  assert.equal(wp.contextIsolation, true);
  assert.equal(wp.sandbox, true);
  assert.equal(wp.nodeIntegration, false);
  assert.equal(wp.webSecurity, true);
  assert.equal(wp.webviewTag, false);
  assert.equal(wp.allowRunningInsecureContent, false);
  assert.equal(wp.preload, f.deps.preloadPath);
  assert.equal(f.options?.width, 1280);
  assert.equal(f.options?.height, 800);
});

test('the renderer is loaded from its file URL and the bridge trusts exactly that URL', async () => {
  const f = fakes();
  const shell = await startShell(f.deps);
  assert.deepEqual(f.loaded, ['file:///opt/Confidant/app/build/renderer/index.html']);
  assert.equal(shell.rendererUrl, f.loaded[0]);
  const handler = f.handlers.get('confidant:call');
  assert.ok(handler);
  assert.deepEqual(await handler({ senderFrame: { url: f.loaded[0]! } }, 'listDevices', {}), { ok: true, result: [] });
  const refused = (await handler({ senderFrame: { url: 'https://example.com/' } }, 'listDevices', {})) as { ok: boolean };
  assert.equal(refused.ok, false);
});

test('navigation, redirects, webviews and window.open are all refused', async () => {
  const f = fakes();
  await startShell(f.deps);
  for (const event of ['will-navigate', 'will-redirect', 'will-attach-webview']) {
    const ls = f.contentsListeners.get(event) ?? [];
    assert.equal(ls.length, 1, event);
    let prevented = false;
    ls[0]!({ preventDefault: () => (prevented = true) }, 'https://example.com/');
    assert.equal(prevented, true, event);
  }
  assert.deepEqual(f.openHandler?.({ url: 'https://example.com/' }), { action: 'deny' });
});

test('every response gets our CSP (replacing any other) and every permission is refused', async () => {
  const f = fakes();
  await startShell(f.deps);
  let out: Record<string, string[] | string> | null = null;
  f.headersListener!(
    { responseHeaders: { 'content-security-policy': ["default-src *"], 'Content-Type': ['text/html'] } },
    (r) => (out = r.responseHeaders),
  );
  assert.deepEqual(out, { 'Content-Type': ['text/html'], 'Content-Security-Policy': [RENDERER_CSP_HEADER] });
  assert.match(RENDERER_CSP_HEADER, /script-src 'self'(;|$)/);
  assert.doesNotMatch(RENDERER_CSP_HEADER, /unsafe-(inline|eval)/);

  let granted: boolean | null = null;
  f.permissionHandler!({}, 'media', (g) => (granted = g));
  assert.equal(granted, false);
  assert.equal(f.permissionCheck!(), false);
});

test('closing the window unsubscribes the bridge; dispose releases the service once', async () => {
  const f = fakes();
  const shell = await startShell(f.deps);
  assert.equal(f.listeners.size, 1);
  for (const l of f.windowListeners.get('closed') ?? []) l();
  assert.equal(f.listeners.size, 0);
  assert.equal(f.handlers.has('confidant:call'), false);
  await Promise.all([shell.dispose(), shell.dispose()]);
  assert.equal(f.disposed, 1);
});
