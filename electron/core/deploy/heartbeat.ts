// Watches one deployed agent from outside its session: a long-lived adb shell on the phone prints a tick every
// 400 ms while the agent's pid runs (not a zombie, not stopped), so a dead agent, a hung or vanished phone, or a
// dead adb server is noticed within 1.5 s even while a long FORWARD is outstanding. Not the agent protocol.
import type { Duplex } from 'node:stream';
import type { Adb } from '../adb/client.js';

export const HEARTBEAT_TICK_MS = 400;
/**
 * No tick for this long = the phone (or adb) stopped answering: three ticks missed, so a busy phone's scheduling
 * hiccup is not a death, and detection (this + one check interval) stays inside the 2 s goal.
 */
export const DEFAULT_HEARTBEAT_MISS_MS = 1400;
const CHECK_EVERY_MS = 100;

export type HeartbeatFailure = 'agent-exited' | 'no-ticks' | 'connection-lost';

export interface HeartbeatOptions {
  missMs?: number;
  /** Called once, with what was seen; not called after stop(). */
  onDead(kind: HeartbeatFailure, message: string): void;
}

export interface Heartbeat {
  /** Ends the watch (closes the shell, which ends the loop on the phone). Idempotent. */
  stop(): void;
}

/**
 * The loop uses shell builtins only, apart from `sleep` (toybox/coreutils take fractions). `/proc/PID/stat`'s
 * third field is the state: Z (zombie: dead, not yet reaped) and T/t (stopped) count as not running; the agent's
 * comm ("agent") has no spaces, so `read` splits the line correctly.
 */
function watchCommand(pid: number): string {
  const tick = (HEARTBEAT_TICK_MS / 1000).toFixed(1);
  return `p=${pid}; while kill -0 $p 2>/dev/null; do ` +
    `read -r _ _ s _ < /proc/$p/stat 2>/dev/null || break; case "$s" in Z|X|T|t) break;; esac; ` +
    `echo .; sleep ${tick}; done; echo "__agent_gone state=$s"`;
}

/** Starts watching `pid` on `serial`; resolves once the watch runs (rejects if the shell cannot be opened). */
export async function startHeartbeat(adb: Adb, serial: string, pid: number, options: HeartbeatOptions): Promise<Heartbeat> {
  const missMs = options.missMs ?? DEFAULT_HEARTBEAT_MISS_MS;
  const stream = await adb.call<Duplex>(`heartbeat shell on ${serial}`, () => adb.device(serial).shell(watchCommand(pid)), 5000);
  let done = false;
  let text = '';
  let lastTickMs = Date.now();
  const finish = (kind: HeartbeatFailure | null, message = '') => {
    if (done) return;
    done = true;
    clearInterval(timer);
    stream.destroy();
    if (kind) options.onDead(kind, message);
  };
  const timer = setInterval(() => {
    const quietMs = Date.now() - lastTickMs;
    if (quietMs > missMs) {
      finish('no-ticks', `phone ${serial} stopped answering: no heartbeat from the agent (pid ${pid}) for ${quietMs} ms ` +
        '(phone hung, unplugged or asleep, or the adb server stuck)');
    }
  }, Math.min(CHECK_EVERY_MS, missMs / 3));
  stream.on('data', (c: Buffer) => {
    lastTickMs = Date.now();
    text = (text + c.toString('latin1')).slice(-200);
    const gone = /__agent_gone state=(\S*)/.exec(text);
    if (gone) {
      const state = gone[1] === 'T' || gone[1] === 't' ? ' (stopped)' : gone[1] === 'Z' ? ' (exited, not yet reaped)' : '';
      finish('agent-exited', `the agent (pid ${pid}) on phone ${serial} is no longer running${state}`);
    }
  });
  const onEnd = () => finish('connection-lost', `lost the adb connection to phone ${serial} (disconnected, or the adb server stopped)`);
  stream.on('end', onEnd);
  stream.on('close', onEnd);
  stream.on('error', onEnd);
  return { stop: () => finish(null) };
}
