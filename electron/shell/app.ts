// Shell start-up as a plain function: harden the session, create the one window, register the API bridge, load the
// renderer, dispose everything on close. Electron objects and the service factory are injected (main.ts passes the
// real ones; test/unit/ipc-shell.test.ts passes fakes); it does not import electron.
import { pathToFileURL } from 'node:url';
import type { BrowserWindowConstructorOptions } from 'electron';
import type { ConfidantService } from '../core/api/contract.js';
import { registerBridge, type EventSinkLike, type IpcMainLike } from './ipc.js';
import { hardenSession, lockNavigation, windowOptions, type NavigableLike, type SessionLike } from './window.js';

export interface WindowLike {
  webContents: NavigableLike & EventSinkLike;
  loadURL(url: string): Promise<void>;
  once(event: 'ready-to-show', listener: () => void): unknown;
  on(event: 'closed', listener: () => void): unknown;
  show(): void;
}

export interface ShellDeps {
  ipcMain: IpcMainLike;
  session: SessionLike;
  createWindow(options: BrowserWindowConstructorOptions): WindowLike;
  createService(): Promise<ConfidantService & { dispose(): Promise<void> }>;
  /** Absolute path of build/renderer/index.html. */
  rendererIndexPath: string;
  /** Absolute path of build/electron/shell/preload.cjs. */
  preloadPath: string;
  log?: (line: string) => void;
}

export interface Shell {
  window: WindowLike;
  rendererUrl: string;
  /** Unregisters the bridge and disposes the service; safe to call twice. */
  dispose(): Promise<void>;
}

export async function startShell(deps: ShellDeps): Promise<Shell> {
  const log = deps.log ?? (() => {});
  hardenSession(deps.session);
  const service = await deps.createService();
  const window = deps.createWindow(windowOptions(deps.preloadPath));
  lockNavigation(window.webContents, log);

  const rendererUrl = pathToFileURL(deps.rendererIndexPath).href;
  const unregister = registerBridge({ ipcMain: deps.ipcMain, service, rendererUrl, sink: window.webContents, log });

  let disposing: Promise<void> | null = null;
  const dispose = () => {
    disposing ??= (async () => {
      unregister();
      await service.dispose();
    })();
    return disposing;
  };
  window.on('closed', () => {
    unregister();
  });
  window.once('ready-to-show', () => window.show());
  await window.loadURL(rendererUrl);
  return { window, rendererUrl, dispose };
}
