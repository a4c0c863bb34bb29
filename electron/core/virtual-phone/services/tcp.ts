// `tcp:PORT` of the virtual phone: bridges an adb stream to 127.0.0.1:PORT on the workstation (what
// `adb forward` and adbkit openTcp reach). Loopback only: it is not a general proxy.
import { connect, type Socket } from 'node:net';
import type { ServiceStream, StreamHandler } from '../transport.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', 'ip6-localhost']);
const PAUSE_ABOVE_BYTES = 1024 * 1024;

/**
 * Parses the part after "tcp:". AOSP's form is `PORT` or `HOST:PORT`; adbkit's openTcp(port, host) sends
 * `PORT:HOST`, so both orders are accepted. Returns null for a bad port or a host that is not loopback.
 */
export function parseTcpTarget(spec: string): { port: number } | null {
  const parts = spec.split(':');
  let portText: string;
  let host = '127.0.0.1';
  if (parts.length === 1) portText = parts[0]!;
  else if (parts.length === 2) {
    if (/^\d+$/.test(parts[0]!)) [portText, host] = [parts[0]!, parts[1]!];
    else [host, portText] = [parts[0]!, parts[1]!];
  } else return null;
  if (!/^\d+$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535 || !LOOPBACK.has(host.toLowerCase())) return null;
  return { port };
}

/** Connects first, so a port nobody listens on refuses the OPEN (the host sees the stream close). */
export async function openTcp(spec: string, stream: ServiceStream, log: (line: string) => void): Promise<StreamHandler | null> {
  const target = parseTcpTarget(spec);
  if (!target) {
    log(`tcp:${spec} refused: only loopback ports are bridged`);
    return null;
  }
  const socket: Socket | null = await new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port: target.port });
    s.once('connect', () => resolve(s));
    s.once('error', (err) => {
      log(`tcp:${spec}: ${err.message}`);
      resolve(null);
    });
  });
  if (!socket) return null;
  socket.setNoDelay(true);
  socket.on('error', () => { /* reported as close */ });
  socket.on('data', (data: Buffer) => {
    const sent = stream.write(data);
    if (stream.pendingBytes > PAUSE_ABOVE_BYTES) {
      socket.pause();
      void sent.then(() => socket.resume());
    }
  });
  socket.on('close', () => stream.close());
  return {
    async onData(data: Buffer) {
      if (socket.destroyed) return;
      if (!socket.write(data)) {
        await new Promise<void>((resolve) => {
          socket.once('drain', resolve);
          socket.once('close', resolve);
        });
      }
    },
    onClose() {
      socket.destroy();
    },
  };
}
