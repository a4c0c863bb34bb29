// A handle on one adb server (host:port) through @devicefarmer/adbkit: probing it, and running every adbkit call
// with a timeout and an error a person can act on. It never starts a server itself and never talks to phones.
import { connect as netConnect } from 'node:net';
import adbkit from '@devicefarmer/adbkit';
import type { Client, DeviceClient } from '@devicefarmer/adbkit';

export interface AdbEndpoint {
  host: string;
  port: number;
}

export const DEFAULT_ADB_ENDPOINT: AdbEndpoint = { host: '127.0.0.1', port: 5037 };
export const DEFAULT_ADB_TIMEOUT_MS = 15_000;

/** An adb failure with what was attempted; `code` is 'server-down', 'timeout' or 'failed'. */
export class AdbError extends Error {
  constructor(message: string, readonly code: 'server-down' | 'timeout' | 'failed', override readonly cause?: unknown) {
    super(message);
    this.name = 'AdbError';
  }
}

export function serverDownMessage(endpoint: AdbEndpoint, detail: string): string {
  const flag = endpoint.port === 5037 ? '' : ` -P ${endpoint.port}`;
  return `adb server is not running at ${endpoint.host}:${endpoint.port}: start it with \`adb${flag} start-server\`` +
    ` (install adb with \`apt-get install adb\` or Android platform-tools if it is missing) [${detail}]`;
}

/** Races a promise against a timer; the error names what timed out. */
export function withTimeout<T>(promise: PromiseLike<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new AdbError(`${what} timed out after ${timeoutMs} ms`, 'timeout')), timeoutMs);
    Promise.resolve(promise).then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e: unknown) => { clearTimeout(timer); reject(e); },
    );
  });
}

const CONNECTION_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EPIPE']);

export interface Adb {
  readonly endpoint: AdbEndpoint;
  readonly client: Client;
  device(serial: string): DeviceClient;
  /** Runs one adbkit call with a timeout; failures become AdbError naming `what`. */
  call<T>(what: string, op: () => PromiseLike<T>, timeoutMs?: number): Promise<T>;
}

/** Makes an error from anything adbkit throws (its FailError carries adb's own message). */
export function toAdbError(err: unknown, what: string, endpoint: AdbEndpoint): AdbError {
  if (err instanceof AdbError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && CONNECTION_DOWN.has(e.code)) {
    return new AdbError(`${what}: ${serverDownMessage(endpoint, e.code)}`, 'server-down', err);
  }
  const message = e instanceof Error ? e.message : String(err);
  return new AdbError(`${what} failed: ${message}`, 'failed', err);
}

/** Creates a client without touching the network (see probeAdbServer / connectAdb for a checked one). */
export function createAdb(endpoint: Partial<AdbEndpoint> = {}, defaultTimeoutMs = DEFAULT_ADB_TIMEOUT_MS): Adb {
  const ep: AdbEndpoint = { ...DEFAULT_ADB_ENDPOINT, ...endpoint };
  // adbkit runs `<bin> -P port start-server` when the connection is refused; a missing binary turns that into a
  // plain failure, so a stopped server is reported instead of being started behind the user's back.
  const client: Client = new adbkit.Client({ host: ep.host, port: ep.port, bin: 'confidant-never-starts-adb' });
  // Unhandled connection errors are re-emitted here; without a listener they would crash the process.
  client.on('error', () => { /* each call reports its own failure */ });
  return {
    endpoint: ep,
    client,
    device: (serial) => client.getDevice(serial),
    call: async <T>(what: string, op: () => PromiseLike<T>, timeoutMs = defaultTimeoutMs) => {
      try {
        return await withTimeout(op(), timeoutMs, what);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // The refused connection surfaces as the failed start attempt (ENOENT of our fake binary).
        if (e?.code === 'ENOENT' && /confidant-never-starts-adb/.test(String(e.message ?? ''))) {
          throw new AdbError(`${what}: ${serverDownMessage(ep, 'connection refused')}`, 'server-down', err);
        }
        throw toAdbError(err, what, ep);
      }
    },
  };
}

/** Opens and closes one TCP connection to the server: resolves when it listens, else a clear AdbError. */
export function probeAdbServer(endpoint: AdbEndpoint, timeoutMs = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: endpoint.host, port: endpoint.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AdbError(serverDownMessage(endpoint, `no answer within ${timeoutMs} ms`), 'server-down'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new AdbError(serverDownMessage(endpoint, err.code ?? err.message), 'server-down', err));
    });
  });
}

/** A client for a server that answered host:version; throws AdbError('server-down') quickly otherwise. */
export async function connectAdb(endpoint: Partial<AdbEndpoint> = {}, timeoutMs = 5000): Promise<Adb> {
  const adb = createAdb(endpoint);
  await probeAdbServer(adb.endpoint, timeoutMs);
  await adb.call('adb host:version', () => adb.client.version(), timeoutMs);
  return adb;
}
