// Deploys the Confidant agent to a phone: picks the binary for the phone's ABIs, installs it (0755, pushed only
// when its sha256 differs from the one on the phone) and a token file (0600), starts it detached from the adb
// shell with a pid file and a log, and waits for the port it reports. Not the agent protocol.
import { randomBytes } from 'node:crypto';
import { syncFile, type SyncFileResult, type SyncProgress } from '../deploy/file-sync.js';
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
  /** The agent exits when no host connects within this long (default 60 s): a deploy that dies leaves nothing. */
  idleTimeoutS?: number;
  onProgress?: (bytesSent: number, bytesTotal: number) => void;
  remoteDir?: string;
  signal?: AbortSignal;
}

export interface DeployedAgent {
  serial: string;
  abi: string;
  remoteDir: string;
  /** Port the agent listens on, on the phone (reach it with openTcp). */
  port: number;
  pid: number;
  token: string;
  /** False when the phone already had this exact binary (same sha256) and nothing was pushed. */
  binaryPushed: boolean;
}

export interface InstalledAgent {
  abi: string;
  remoteDir: string;
  binary: SyncFileResult;
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

/** The last lines of the agent's log on the phone, or a line saying why they could not be read; never throws. */
export async function readAgentLogTail(adb: Adb, serial: string, dir = AGENT_DIR, lines = 30): Promise<string> {
  try {
    const text = await shellRaw(adb, serial, `tail -n ${lines} ${shellQuote(`${dir}/agent.log`)} 2>&1`, { timeoutMs: 5_000 });
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
export async function stopAgent(adb: Adb, serial: string, remoteDir = AGENT_DIR, timeoutMs = 15_000): Promise<void> {
  const pidFile = shellQuote(`${remoteDir}/agent.pid`);
  await runShell(adb, serial,
    `if [ -f ${pidFile} ]; then p=$(cat ${pidFile}); ` +
    `if ${aliveTest('$p')}; then kill "$p"; i=0; ` +
    `while ${aliveTest('$p')} && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; kill -9 "$p" 2>/dev/null; ` +
    `while ${aliveTest('$p')} && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; fi; ` +
    `rm -f ${pidFile}; fi`, { timeoutMs });
}

/**
 * Picks the binary for the phone's ABIs, stops an agent left from an earlier run and makes `<dir>/agent` equal to
 * the binary (pushed only when the sha256 differs; see deploy/file-sync.ts). Does not start it.
 */
export async function installAgent(adb: Adb, serial: string, options: Pick<DeployOptions, 'agents' | 'abis' | 'remoteDir' | 'signal'> & {
  onProgress?: (p: SyncProgress) => void;
}): Promise<InstalledAgent> {
  const dir = options.remoteDir ?? AGENT_DIR;
  const abis = options.abis ?? abiList(parseGetprop(await shellRaw(adb, serial, 'getprop', { timeoutMs: 15_000, signal: options.signal })));
  const { abi, path } = pickAgentBinary(abis, options.agents, serial);
  await stopAgent(adb, serial, dir);
  const binary = await syncFile(adb, serial, path, `${dir}/agent`, { mode: 0o755, signal: options.signal, onProgress: options.onProgress });
  return { abi, remoteDir: dir, binary };
}

/**
 * Starts the installed agent detached (setsid + nohup, output to agent.log, pid to agent.pid: a child of the adb
 * shell dies with it otherwise) with a fresh token and waits for the port it reports. A start that fails throws
 * an error carrying the last lines of agent.log.
 */
export async function startAgent(adb: Adb, serial: string, installed: Pick<InstalledAgent, 'abi' | 'remoteDir'>,
  options: Pick<DeployOptions, 'memoryBudgetMb' | 'token' | 'startTimeoutMs' | 'idleTimeoutS' | 'signal'>): Promise<Omit<DeployedAgent, 'binaryPushed'>> {
  const { abi, remoteDir: dir } = installed;
  const token = options.token ?? randomBytes(24).toString('hex');
  const q = (name: string) => shellQuote(`${dir}/${name}`);

  await stopAgent(adb, serial, dir);
  const prep = await runShell(adb, serial, `mkdir -p ${shellQuote(dir)} && rm -f ${q('agent.port')} ${q('agent.log')}`, { signal: options.signal });
  if (prep.exitCode !== 0) throw new AdbError(`cannot prepare ${dir} on ${serial}: ${prep.output.trim()}`, 'failed');
  await pushFile(adb, serial, Buffer.from(token, 'utf8'), `${dir}/token`, { mode: 0o600, signal: options.signal });

  const start = `cd ${shellQuote(dir)} && (setsid nohup ./agent --port 0 --port-file ${q('agent.port')} ` +
    `--token-file ${q('token')} --memory-budget-mb ${Math.floor(options.memoryBudgetMb)} ` +
    `--idle-timeout-s ${Math.max(1, Math.floor(options.idleTimeoutS ?? 60))} > ${q('agent.log')} 2>&1 ` +
    `< /dev/null & echo $! > ${q('agent.pid')})`;
  const started = await runShell(adb, serial, start, { timeoutMs: 15_000, signal: options.signal });
  if (started.exitCode !== 0) {
    throw new AdbError(`starting the agent on ${serial} failed (status ${started.exitCode}): ${started.output.trim()}`, 'failed');
  }

  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  for (;;) {
    let r;
    try {
      r = await runShell(adb, serial,
        `p=$(cat ${q('agent.pid')} 2>/dev/null); echo "pid=$p"; echo "port=$(cat ${q('agent.port')} 2>/dev/null)"; ` +
        `if ${aliveTest('$p')}; then echo alive=1; else echo alive=0; fi`,
        { timeoutMs: 10_000, signal: options.signal });
    } catch (err) {
      await stopAgent(adb, serial, dir, 5000).catch(() => undefined);
      throw err;
    }
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

/** installAgent + startAgent: the agent binary for the phone's ABI, running and listening on `port`. */
export async function deployAgent(adb: Adb, serial: string, options: DeployOptions): Promise<DeployedAgent> {
  const installed = await installAgent(adb, serial, {
    ...options,
    onProgress: options.onProgress ? (p) => options.onProgress!(p.bytesSent, p.bytesTotal) : undefined,
  });
  const agent = await startAgent(adb, serial, installed, options);
  return { ...agent, binaryPushed: installed.binary.pushed };
}
