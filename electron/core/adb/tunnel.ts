// Opens a TCP stream to a port on the phone through adb (the `tcp:PORT` service, adbkit openTcp): one stream per
// connection, nothing to remove afterwards. Not `adb forward`, and not proof that the agent is healthy.
import type { Duplex } from 'node:stream';
import { AdbError, type Adb } from './client.js';

/**
 * A Duplex to 127.0.0.1:PORT on the phone. When the phone refuses the stream (nothing listens), adb answers
 * FAIL "closed" and this rejects; a stream that opens is still no proof of a healthy agent: the caller's
 * handshake is.
 */
export async function openTcp(adb: Adb, serial: string, port: number, timeoutMs = 10_000): Promise<Duplex> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`bad phone port ${port}`);
  const what = `adb tunnel to ${serial} tcp:${port}`;
  let stream: Duplex;
  try {
    stream = await adb.call<Duplex>(what, () => adb.device(serial).openTcp(port), timeoutMs);
  } catch (err) {
    if (err instanceof AdbError && /Failure: 'closed'/.test(err.message)) {
      throw new AdbError(`${what} failed: nothing accepts connections on port ${port} on the phone (is the agent running?)`, 'failed', err);
    }
    throw err;
  }
  // Without a listener a reset tunnel would crash the process; the owner sees 'close' (and may add its own).
  stream.on('error', () => undefined);
  return stream;
}
