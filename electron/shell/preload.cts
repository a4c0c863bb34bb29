// Sandboxed preload (CommonJS, compiled to preload.cjs): exposes window.confidant = {call, onEvent} and nothing else.
// It does no validation or typing (the main process validates; renderer/api.ts types), and never exposes ipcRenderer.
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';
import type {
  CallReply,
  ConfidantBridge,
  EventMessage,
  IPC_CALL_CHANNEL,
  IPC_EVENT_CHANNEL,
} from '../core/api/contract.js';

// Literals on purpose: a sandboxed preload can only require('electron'), not our contract module. The type
// annotations make tsc fail if they ever drift from the contract's constants.
const CALL_CHANNEL: typeof IPC_CALL_CHANNEL = 'confidant:call';
const EVENT_CHANNEL: typeof IPC_EVENT_CHANNEL = 'confidant:event';

const bridge: ConfidantBridge = {
  call(method: string, params: unknown): Promise<CallReply> {
    return ipcRenderer.invoke(CALL_CHANNEL, String(method), params) as Promise<CallReply>;
  },
  onEvent(listener: (message: EventMessage) => void): () => void {
    if (typeof listener !== 'function') throw new TypeError('onEvent needs a function');
    // Hand the page only the message, never the IpcRendererEvent (it carries a sender object).
    const wrapped = (_event: IpcRendererEvent, message: EventMessage) => listener(message);
    ipcRenderer.on(EVENT_CHANNEL, wrapped);
    return () => {
      ipcRenderer.removeListener(EVENT_CHANNEL, wrapped);
    };
  },
};

contextBridge.exposeInMainWorld('confidant', bridge);
