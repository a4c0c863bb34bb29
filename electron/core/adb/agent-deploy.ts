// Deploys the Confidant agent to a phone: picks the binary for the phone's ABIs, pushes it (0755) and a token
// file (0600), starts it detached from the adb shell, and waits for the port it reports. Not the agent protocol.
import { randomBytes } from 'node:crypto';
import { AdbError, type Adb } from './client.js';
import { abiList, parseGetprop } from './parse.js';
import { pushFile } from './push.js';
import { runShell, shellQuote, shellRaw } from './shell.js';

export const AGENT_DIR = '/data/local/tmp/confidant';

export interface DeployOptions {
  /** Agent binaries by ABI, e.g. { x86_64: 'build/native/x86_64/confidant-agent', 'arm64-v8a': '...' }. */
  agents: Record<string, string>;
  memoryBudgetMb: number;
  /** Shared secret the agent expects in the handshake; generated when omitted. */
  token?: string;
  /** The phone's ABIs in preference order; read with getprop when omitted. */
  abis?: string[];
  /** How long to wait for agent.port after the start (default 15 s). */
  startTimeoutMs?: number;
  onProgress?: (bytesSent: number, bytesTotal: number) => void;
  remoteDir?: string;
}

export interface DeployedAgent {
  serial: string;
  abi: string;
  remoteDir: string;
  /** Port the agent listens on, on the phone (reach it with openTcp). */
  port: number;
  pid: number;
  token: string;
}

/** Pure: the first of the phone's ABIs (in its order of preference) that we have a binary for. */
export function pickAgentBinary(phoneAbis: string[], agents: Record<string, string>, serial = 'the phone'): { abi: string; path: string } {
  for (const abi of phoneAbis) {
    const path = agents[abi];
    if (path) return { abi, path };
  }
  const have = Object.keys(agents);
  throw new AdbError(
    `no agent binary fits ${serial}: it runs ${phoneAbis.length ? phoneAbis.join(', ') : '(no ABI reported)'}, ` +
    `built agents: ${have.length ? have.join(', ') : 'none'}. Build the agent for ${phoneAbis[0] ?? 'its ABI'} ` +
    '(see the android-agent README) or use another phone.', 'failed');
}

async function readAgentLogTail(adb: Adb, serial: string, dir: string): Promise<string> {
  try {
    const text = await shellRaw(adb, serial, `tail -n 30 ${shellQuote(`${dir}/agent.log`)} 2>&1`, { timeoutMs: 10_000 });
    return text.trim() || '(agent.log is empty)';
  } catch (err) {
    return `(could not read agent.log: ${(err as Error).message})`;
  }
}

/**
 * Shell test for "pid runs": kill -0 alone also succeeds for a zombie, and an orphaned agent becomes one when
 * the reaper of orphans never reaps (a container's pid 1, not Android's init), so the State line is checked too.
 */
function aliveTest(pidExpr: string): string {
  return `[ -n "${pidExpr}" ] && kill -0 "${pidExpr}" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' /proc/${pidExpr}/status 2>/dev/null`;
}

/** Stops a running agent (from its pid file): SIGTERM, then SIGKILL after ~2 s. Quiet when none runs. */
export async function stopAgent(adb: Adb, serial: string, remoteDir = AGENT_DIR): Promise<void> {
  const pidFile = shellQuote(`${remoteDir}/agent.pid`);
  await runShell(adb, serial,
    `if [ -f ${pidFile} ]; then p=$(cat ${pidFile}); ` +
    `if ${aliveTest('$p')}; then kill "$p"; i=0; ` +
    `while ${aliveTest('$p')} && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; kill -9 "$p" 2>/dev/null; fi; ` +
    `rm -f ${pidFile}; fi`, { timeoutMs: 15_000 });
}

export async function deployAgent(adb: Adb, serial: string, options: DeployOptions): Promise<DeployedAgent> {
  const dir = options.remoteDir ?? AGENT_DIR;
  const abis = options.abis ?? abiList(parseGetprop(await shellRaw(adb, serial, 'getprop', { timeoutMs: 15_000 })));
  const { abi, path } = pickAgentBinary(abis, options.agents, serial);
  const token = options.token ?? randomBytes(24).toString('hex');
  const q = (name: string) => shellQuote(`${dir}/${name}`);

  await stopAgent(adb, serial, dir);
  const prep = await runShell(adb, serial, `mkdir -p ${shellQuote(dir)} && rm -f ${q('agent.port')} ${q('agent.log')}`);
  if (prep.exitCode !== 0) throw new AdbError(`cannot prepare ${dir} on ${serial}: ${prep.output.trim()}`, 'failed');
  await pushFile(adb, serial, path, `${dir}/agent`, { mode: 0o755, onProgress: options.onProgress });
  await pushFile(adb, serial, Buffer.from(token, 'utf8'), `${dir}/token`, { mode: 0o600 });

  // Detached (setsid + nohup, output to a log, pid to a file): a child of the adb shell dies with it otherwise.
  const start = `cd ${shellQuote(dir)} && (setsid nohup ./agent --port 0 --port-file ${q('agent.port')} ` +
    `--token-file ${q('token')} --memory-budget-mb ${Math.floor(options.memoryBudgetMb)} > ${q('agent.log')} 2>&1 ` +
    `< /dev/null & echo $! > ${q('agent.pid')})`;
  const started = await runShell(adb, serial, start, { timeoutMs: 15_000 });
  if (started.exitCode !== 0) {
    throw new AdbError(`starting the agent on ${serial} failed (status ${started.exitCode}): ${started.output.trim()}`, 'failed');
  }

  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  for (;;) {
    const r = await runShell(adb, serial,
      `p=$(cat ${q('agent.pid')} 2>/dev/null); echo "pid=$p"; echo "port=$(cat ${q('agent.port')} 2>/dev/null)"; ` +
      `if ${aliveTest('$p')}; then echo alive=1; else echo alive=0; fi`,
      { timeoutMs: 10_000 });
    const field = (k: string) => new RegExp(`^${k}=(.*?)\\s*$`, 'm').exec(r.output)?.[1] ?? '';
    const pidText = field('pid');
    const portText = field('port');
    const liveness = field('alive') === '1' ? 'alive' : field('alive') === '0' ? 'dead' : '';
    const port = /^\d+$/.test(portText) ? Number(portText) : 0;
    if (port > 0 && port < 65536 && liveness === 'alive') {
      return { serial, abi, remoteDir: dir, port, pid: Number(pidText), token };
    }
    if (liveness === 'dead' || Date.now() > deadline) {
      const why = liveness === 'dead' ? 'exited before reporting its port' : `did not write ${dir}/agent.port within ${options.startTimeoutMs ?? 15_000} ms`;
      const tail = await readAgentLogTail(adb, serial, dir);
      if (liveness !== 'dead') await stopAgent(adb, serial, dir).catch(() => undefined);
      throw new AdbError(`the agent (${abi}) on ${serial} ${why}. Last lines of agent.log:\n${tail}`, 'failed');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
