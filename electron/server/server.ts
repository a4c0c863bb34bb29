// Headless mode (`confidant serve`): an HTTP server for the built renderer plus a WebSocket endpoint /api that speaks
// the same contract as the Electron IPC bridge. Token-guarded and loopback-only by default. It does not create the
// service (serve.ts does) and holds no API logic of its own (contract.ts validates and dispatches).
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, resolve, sep } from 'node:path';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import {
  RENDERER_CSP_HEADER,
  dispatchCall,
  type ConfidantService,
  type EventMessage,
  type WsReply,
} from '../core/api/contract.js';

export interface ServerOptions {
  service: ConfidantService;
  /** Defaults to 127.0.0.1. Anything else exposes training controls to the network (token still required). */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Defaults to 32 random bytes, hex. */
  token?: string;
  /** The built renderer (build/renderer). */
  staticDir: string;
  log?: (line: string) => void;
}

export interface RunningServer {
  /** Open this in a browser: http://127.0.0.1:PORT/?token=... */
  url: string;
  /** http://127.0.0.1:PORT (no token). */
  origin: string;
  token: string;
  close(): Promise<void>;
}

const MAX_MESSAGE_BYTES = 1 << 20;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': RENDERER_CSP_HEADER,
  'X-Content-Type-Options': 'nosniff',
  // The token rides in the page URL: never let it leave in a Referer header.
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/** Constant-time comparison that does not leak the length either (both sides are hashed to 32 bytes first). */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}

function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/**
 * The token may come as `?token=`, `Authorization: Bearer`, or the cookie this server sets after the first
 * authenticated page load (so the page's own scripts and styles, which carry no query, can load).
 */
function presentedToken(req: IncomingMessage, url: URL, cookieName: string): string | null {
  const fromQuery = url.searchParams.get('token');
  if (fromQuery) return fromQuery;
  const auth = req.headers.authorization;
  if (auth && /^Bearer\s+/i.test(auth)) return auth.replace(/^Bearer\s+/i, '').trim();
  return cookieValue(req.headers.cookie, cookieName);
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const token = opts.token ?? randomBytes(32).toString('hex');
  if (token.length < 16) throw new Error('the server token must be at least 16 characters');
  const log = opts.log ?? (() => {});
  const staticRoot = resolve(opts.staticDir);
  const service = opts.service;

  let origin = ''; // known once listening
  let cookieName = 'confidant_token';
  // Host header check (DNS-rebinding defence): only the names this server is reachable under on this machine.
  let allowedHosts = new Set<string>();

  const authorized = (req: IncomingMessage, url: URL) => {
    const given = presentedToken(req, url, cookieName);
    return given !== null && tokensEqual(given, token);
  };

  const refuse = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`${text}\n`);
  };

  const server = createServer((req, res) => {
    void handleHttp(req, res).catch((err: unknown) => {
      log(`http error: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) refuse(res, 500, 'internal error');
      else res.destroy();
    });
  });

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    if (!allowedHosts.has(req.headers.host ?? '')) return refuse(res, 421, 'unexpected Host header');
    if (!authorized(req, url)) {
      return refuse(res, 401, 'Confidant: open the full URL printed by `confidant serve` (it carries ?token=...)');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method not allowed');

    let pathname: string;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      return refuse(res, 400, 'bad path');
    }
    if (pathname.endsWith('/')) pathname += 'index.html';
    const file = resolve(staticRoot, `.${pathname}`);
    if (file !== staticRoot && !file.startsWith(staticRoot + sep)) return refuse(res, 404, 'not found');
    const info = await stat(file).catch(() => null);
    if (!info || !info.isFile()) return refuse(res, 404, 'not found');

    const headers: Record<string, string | string[]> = {
      ...SECURITY_HEADERS,
      'Content-Type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Content-Length': String(info.size),
    };
    // Lets the page's own assets load without the query; Strict + HttpOnly keeps it away from other sites and scripts.
    headers['Set-Cookie'] = `${cookieName}=${token}; Path=/; HttpOnly; SameSite=Strict`;
    res.writeHead(200, headers);
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  }

  // --- WebSocket /api -------------------------------------------------------------------------------------------
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });

  server.on('upgrade', (req, socket, head) => {
    const reject = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    const url = new URL(req.url ?? '/', origin);
    if (url.pathname !== '/api') return reject(404, 'Not Found');
    if (!allowedHosts.has(req.headers.host ?? '')) return reject(421, 'Misdirected Request');
    if (!authorized(req, url)) return reject(401, 'Unauthorized');
    // Cross-site WebSocket hijacking defence: a page from any other origin is refused even if it learnt the token.
    if (req.headers.origin !== origin) {
      log(`refused WebSocket from origin ${String(req.headers.origin)}`);
      return reject(403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  wss.on('connection', (ws: WebSocket) => {
    const unsubscribe = service.onEvent((message: EventMessage) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
    });
    ws.on('close', unsubscribe);
    ws.on('error', () => ws.terminate());
    ws.on('message', (raw: RawData, isBinary: boolean) => {
      void handleMessage(ws, raw, isBinary);
    });
  });

  async function handleMessage(ws: WebSocket, raw: RawData, isBinary: boolean): Promise<void> {
    const send = (reply: WsReply) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(reply));
    };
    if (isBinary) return send({ id: null, error: { code: 'bad-params', message: 'send JSON text frames' } });
    let request: unknown;
    try {
      request = JSON.parse(raw.toString());
    } catch {
      return send({ id: null, error: { code: 'bad-params', message: 'message is not valid JSON' } });
    }
    const { id, method, params } = (request ?? {}) as { id?: unknown; method?: unknown; params?: unknown };
    if (typeof id !== 'number' && typeof id !== 'string') {
      return send({ id: null, error: { code: 'bad-params', message: 'message needs an "id" (number or string)' } });
    }
    if (typeof method !== 'string') {
      return send({ id, error: { code: 'unknown-method', message: 'message needs a "method" string' } });
    }
    const reply = await dispatchCall(service, method, params);
    send(reply.ok ? { id, result: reply.result } : { id, error: reply.error });
  }

  // --- listen ---------------------------------------------------------------------------------------------------
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', rejectListen);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  origin = `http://${urlHost}:${port}`;
  // Cookies are shared across ports on one host: name ours by port so two servers do not overwrite each other.
  cookieName = `confidant_token_${port}`;
  allowedHosts = new Set([`${urlHost}:${port}`]);
  if (host === '127.0.0.1' || host === '::1') allowedHosts.add(`localhost:${port}`);

  let closing: Promise<void> | null = null;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    token,
    close() {
      closing ??= new Promise<void>((done) => {
        for (const client of wss.clients) client.close(1001, 'server shutting down');
        wss.close();
        server.close(() => done());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
