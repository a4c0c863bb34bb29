// A private real adb server for tests, on its own port (default 15037, or CONFIDANT_TEST_ADB_PORT so that two
// checkouts can run their suites side by side), so tests never touch the user's server on 5037. Not a fake: it is
// Debian's/Google's adb; tiers that need it skip loudly without it (and fail in CI).
import { spawnSync } from 'node:child_process';
import { needTool } from './tools.js';

export const TEST_ADB_PORT = Number(process.env.CONFIDANT_TEST_ADB_PORT ?? 15037);

export interface TestAdbServer {
  port: number;
  endpoint: { host: string; port: number };
  /** Runs the adb command line against this server: adb -P PORT [-s SERIAL] ARGS. */
  adb(args: string[], serial?: string, timeoutMs?: number): { status: number | null; stdout: string; stderr: string };
  stop(): void;
}

/** Starts (or reuses) the private server; returns a skip reason instead when adb is not installed. */
export function startTestAdbServer(port = TEST_ADB_PORT): TestAdbServer | string {
  const skip = needTool('adb');
  if (skip) return skip;
  const run = (args: string[], serial?: string, timeoutMs = 30_000) => {
    const full = ['-P', String(port), ...(serial ? ['-s', serial] : []), ...args];
    // The forked server keeps no handle on our pipes, so spawnSync returns once start-server has answered.
    const r = spawnSync('adb', full, { encoding: 'utf8', timeout: timeoutMs });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const started = run(['start-server']);
  if (started.status !== 0) {
    throw new Error(`could not start a private adb server on port ${port}: ${started.stderr || started.stdout}`);
  }
  return {
    port,
    endpoint: { host: '127.0.0.1', port },
    adb: run,
    stop: () => {
      run(['kill-server'], undefined, 10_000);
    },
  };
}
