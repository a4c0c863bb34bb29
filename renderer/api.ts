// The renderer's only door to the backend: a typed `call(method, params)` and `onEvent(listener)` over either the
// Electron preload bridge (window.confidant) or, in headless `confidant serve` mode, a WebSocket to /api?token=.
// It adds no logic of its own (no retries of calls, no caching); validation happens on the other side.
import type {
  CallReply,
  ConfidantBridge,
  EventMessage,
  MethodName,
  ParamsOf,
  ResultOf,
  WsReply,
} from '../electron/core/api/contract.js';

declare global {
  interface Window {
    confidant?: ConfidantBridge;
  }
}

export interface Api {
  /** Parameterless methods may omit params. Rejects with an Error whose message is written for people. */
  call<M extends MethodName>(method: M, ...params: {} extends ParamsOf<M> ? [ParamsOf<M>?] : [ParamsOf<M>]): Promise<ResultOf<M>>;
  onEvent(listener: (message: EventMessage) => void): () => void;
  /** 'electron' or 'websocket': shown in the footer, handy when a bug report comes in. */
  readonly transport: 'electron' | 'websocket';
}

function unwrap<R>(reply: CallReply): R {
  if (reply.ok) return reply.result as R;
  throw new Error(reply.error.message);
}

function fromBridge(bridge: ConfidantBridge): Api {
  return {
    transport: 'electron',
    async call(method, ...rest) {
      return unwrap(await bridge.call(method, rest[0] ?? {}));
    },
    onEvent: (listener) => bridge.onEvent(listener),
  };
}

/** WebSocket client: one socket, opened on first use and reopened after a drop while someone listens for events. */
function overWebSocket(wsUrl: string): Api {
  let socket: WebSocket | null = null;
  let opened: Promise<WebSocket> | null = null;
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: CallReply) => void }>();
  const listeners = new Set<(m: EventMessage) => void>();
  let reconnectTimer: ReturnType<typeof setTimeout> | null = null;

  const connect = (): Promise<WebSocket> => {
    if (opened) return opened;
    opened = new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(wsUrl);
      ws.onopen = () => {
        socket = ws;
        resolve(ws);
      };
      ws.onmessage = (e) => {
        let msg: unknown;
        try {
          msg = JSON.parse(String(e.data));
        } catch {
          return;
        }
        if (msg && typeof msg === 'object' && 'event' in msg) {
          for (const l of listeners) l(msg as EventMessage);
          return;
        }
        const reply = msg as WsReply;
        if (typeof reply.id !== 'number') return;
        const waiter = pending.get(reply.id);
        if (!waiter) return;
        pending.delete(reply.id);
        waiter.resolve('error' in reply ? { ok: false, error: reply.error } : { ok: true, result: reply.result });
      };
      ws.onclose = () => {
        const wasOpen = socket === ws;
        socket = null;
        opened = null;
        for (const [id, waiter] of pending) {
          pending.delete(id);
          waiter.resolve({
            ok: false,
            error: { code: 'disconnected', message: 'Lost the connection to the Confidant server. Is `confidant serve` still running?' },
          });
        }
        if (!wasOpen) reject(new Error('Could not connect to the Confidant server (check the token in the page URL).'));
        if (listeners.size > 0 && reconnectTimer === null) {
          reconnectTimer = setTimeout(() => {
            reconnectTimer = null;
            connect().catch(() => {});
          }, 2000);
        }
      };
    });
    return opened;
  };

  return {
    transport: 'websocket',
    async call(method, ...rest) {
      const ws = socket ?? (await connect());
      const id = nextId++;
      const reply = new Promise<CallReply>((resolve) => pending.set(id, { resolve }));
      ws.send(JSON.stringify({ id, method, params: rest[0] ?? {} }));
      return unwrap(await reply);
    },
    onEvent(listener) {
      listeners.add(listener);
      connect().catch(() => {});
      return () => {
        listeners.delete(listener);
      };
    },
  };
}

/** Picks the transport from the environment the page finds itself in. */
export function connectApi(): Api {
  if (window.confidant) return fromBridge(window.confidant);
  const token = new URLSearchParams(window.location.search).get('token') ?? '';
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return overWebSocket(`${scheme}//${window.location.host}/api?token=${encodeURIComponent(token)}`);
}
