// Starts the native agent as a local child process (no adb) on a loopback port and connects an AgentClient:
// the fallback transport when adb is absent, and how tests reach a real agent. Not the adb deployment path.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient } from '../protocol/agent-client.js';
import type { DeployedAgent, StageDeployer } from './stage-deployer.js';

export interface LocalAgentOptions {
  binary: string;
  /** Device label used in error messages. */
  label?: string;
  /** Passed as --memory-budget-mb when set. */
  memoryBudgetMb?: number;
  /** Limit for start-up (port file + HELLO) and the client's default request timeout, in milliseconds. */
  timeoutMs?: number;
  /** Extra command-line arguments, appended last. */
  extraArgs?: string[];
  /** The client's keep-alive (AgentClientOptions.keepAliveMs). */
  keepAliveMs?: number;
}

export interface LocalAgent {
  client: AgentClient;
  process: ChildProcess;
  port: number;
  /** Kills the agent (SIGTERM, then SIGKILL after a grace period) and removes its temp folder. Idempotent. */
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 2000;
const PORT_FILE_POLL_MS = 20;

// Agents still running when the test process exits are killed, whatever path the exit takes.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

export async function startLocalAgent(opts: LocalAgentOptions): Promise<LocalAgent> {
  const binary = opts.binary;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (!existsSync(binary)) throw new Error(`agent binary ${binary} does not exist: run npm run build:native`);

  const dir = await mkdtemp(join(tmpdir(), 'confidant-agent-'));
  const tokenFile = join(dir, 'token');
  const portFile = join(dir, 'port');
  const token = randomBytes(16).toString('hex');
  await writeFile(tokenFile, token, { mode: 0o600 });
  await chmod(tokenFile, 0o600); // the mode of writeFile is filtered by the umask

  const args = ['--port', '0', '--port-file', portFile, '--token-file', tokenFile, '--idle-timeout-s', '30'];
  if (opts.memoryBudgetMb !== undefined) args.push('--memory-budget-mb', String(opts.memoryBudgetMb));
  args.push(...(opts.extraArgs ?? []));

  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | undefined;
  child.on('error', (err) => (spawnError = err));
  child.on('exit', () => live.delete(child));

  let client: AgentClient | undefined;
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      client?.close(); // the agent exits by itself when its connection closes
      if (!(await waitForExit(child, 200))) {
        child.kill('SIGTERM');
        if (!(await waitForExit(child, STOP_GRACE_MS))) {
          child.kill('SIGKILL');
          await waitForExit(child, STOP_GRACE_MS);
        }
      }
      live.delete(child);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const describe = () => `${binary} ${args.join(' ')}\n--- agent output (last 4000 chars) ---\n${output}`;
  try {
    const port = await waitForPortFile(portFile, child, timeoutMs, () => spawnError, describe);
    const socket = net.connect(port, '127.0.0.1');
    client = await AgentClient.connect(socket, { token, label: opts.label ?? `local agent pid ${child.pid}`, timeoutMs, keepAliveMs: opts.keepAliveMs });
    return { client, process: child, port, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForPortFile(
  portFile: string,
  child: ChildProcess,
  timeoutMs: number,
  spawnError: () => Error | undefined,
  describe: () => string,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let previous = '';
  for (;;) {
    const err = spawnError();
    if (err) throw new Error(`cannot start the agent: ${err.message}\n${describe()}`);
    if (hasExited(child)) {
      throw new Error(
        `the agent exited (code ${child.exitCode}, signal ${child.signalCode}) before writing its port file\n` +
          describe(),
      );
    }
    const text = await readFile(portFile, 'utf8').catch(() => '');
    // Guard against reading a half-written file ("80" of "8080"): accept digits ending in a newline, or the same
    // digits on two polls in a row.
    const match = /^(\d+)\s*$/.exec(text);
    if (match && (text.endsWith('\n') || text === previous)) {
      const port = Number(match[1]);
      if (port > 0 && port < 65536) return port;
    }
    previous = text;
    if (Date.now() > deadline) {
      throw new Error(`the agent wrote no port to ${portFile} within ${timeoutMs} ms\n${describe()}`);
    }
    await new Promise((r) => setTimeout(r, PORT_FILE_POLL_MS));
  }
}

/** Deploys every stage as a local agent process; the stage file is used in place (nothing to push). */
export class LocalDeployer implements StageDeployer {
  readonly description = 'local agent processes (adb is not installed, so no phone transport is used)';
  constructor(private readonly agentBinary: string) {}

  async deploy(serial: string, stageFile: string, opts: { memoryBudgetBytes: number }): Promise<DeployedAgent> {
    const agent = await startLocalAgent({ binary: this.agentBinary, memoryBudgetMb: Math.ceil(opts.memoryBudgetBytes / 2 ** 20), label: serial });
    return {
      serial,
      client: agent.client,
      stagePath: stageFile,
      stop: async () => {
        await agent.client.shutdown().catch(() => undefined);
        await agent.stop();
      },
    };
  }
}
