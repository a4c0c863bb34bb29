// Main-process side of the typed API bridge: one `confidant:call` handler (sender check, contract validation,
// service call) and forwarding of service events to the window. It is not Electron-bound: ipcMain, the window's
// webContents and the service are injected, so test/unit/ipc-*.test.ts runs it in plain Node.
import {
  IPC_CALL_CHANNEL,
  IPC_EVENT_CHANNEL,
  dispatchCall,
  type CallReply,
  type ConfidantService,
  type EventMessage,
} from '../core/api/contract.js';

/** The part of Electron's IpcMainInvokeEvent we read. */
export interface InvokeEventLike {
  /** `parent` is null for a top-level frame (Electron's WebFrameMain); absent in fakes means top-level. */
  senderFrame: { url: string; parent?: unknown } | null | undefined;
}

/** The part of Electron's ipcMain we use. */
export interface IpcMainLike {
  handle(channel: string, listener: (event: InvokeEventLike, ...args: unknown[]) => Promise<unknown>): void;
  removeHandler(channel: string): void;
}

/** The part of Electron's WebContents we use to push events. */
export interface EventSinkLike {
  send(channel: string, message: EventMessage): void;
  isDestroyed(): boolean;
}

/** Drops the query and fragment: the renderer may use either without changing who it is. */
function documentUrl(url: string): string {
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

/**
 * True only for the document we loaded ourselves (the renderer's file URL). Anything else (a navigated-away page,
 * an iframe from elsewhere, a frame that is already gone) is refused.
 */
export function isTrustedSender(frameUrl: string | null | undefined, rendererUrl: string): boolean {
  if (typeof frameUrl !== 'string' || frameUrl === '') return false;
  return documentUrl(frameUrl) === documentUrl(rendererUrl);
}

export interface BridgeOptions {
  ipcMain: IpcMainLike;
  service: ConfidantService;
  /** The file URL of build/renderer/index.html as loaded into the window. */
  rendererUrl: string;
  sink: EventSinkLike;
  log?: (line: string) => void;
}

/** Registers the handler and the event forwarding; returns a function that undoes both. */
export function registerBridge(opts: BridgeOptions): () => void {
  const log = opts.log ?? (() => {});

  opts.ipcMain.handle(IPC_CALL_CHANNEL, async (event, method, params): Promise<CallReply> => {
    const url = event.senderFrame?.url;
    // Only the top-level document: a subframe showing the same file is still not the app.
    const topLevel = event.senderFrame?.parent == null;
    if (!topLevel || !isTrustedSender(url, opts.rendererUrl)) {
      log(`refused ${IPC_CALL_CHANNEL} from untrusted frame ${String(url)}`);
      return { ok: false, error: { code: 'forbidden', message: 'this page is not allowed to call the Confidant API' } };
    }
    return dispatchCall(opts.service, typeof method === 'string' ? method : String(method), params);
  });

  const unsubscribe = opts.service.onEvent((message) => {
    if (opts.sink.isDestroyed()) return;
    opts.sink.send(IPC_EVENT_CHANNEL, message);
  });

  let disposed = false;
  return () => {
    if (disposed) return;
    disposed = true;
    unsubscribe();
    opts.ipcMain.removeHandler(IPC_CALL_CHANNEL);
  };
}
