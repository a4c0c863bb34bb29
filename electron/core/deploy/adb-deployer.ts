// Deploys a stage to a phone through an adb server: agent binary for its ABI (pushed only when its sha256 differs),
// the stage file (skipped when the phone holds the same sha256, else pushed with progress, resume and verification,
// renamed into place only once verified), then the agent started detached, an adb tunnel (openTcp: nothing to
// clean up, no `adb forward`), the handshake and a heartbeat. Not the pipeline: it hands back a connected AgentClient.
import { basename } from 'node:path';
import type { Adb } from '../adb/client.js';
import { installAgent, readAgentLogTail, startAgent, stopAgent } from '../adb/agent-deploy.js';
import { runShell, shellQuote } from '../adb/shell.js';
import { openTcp } from '../adb/tunnel.js';
import { AgentClient } from '../protocol/agent-client.js';
import { syncFile } from './file-sync.js';
import { startHeartbeat, type Heartbeat } from './heartbeat.js';
import type { DeployedAgent, PushProgress, StageDeployer } from './stage-deployer.js';

/** Long enough for one FORWARD/BACKWARD of a large stage on a slow phone. */
const AGENT_REQUEST_TIMEOUT_MS = 120_000;
/** SHUTDOWN of an idle agent; a busy or silent one is killed through its pid file instead. */
const SHUTDOWN_TIMEOUT_MS = 2000;
/** The shell that kills the agent when a phone hangs must not hold up the caller for long. */
const STOP_SHELL_TIMEOUT_MS = 6000;

export interface AdbDeployerOptions {
  /** Remove the stage file (and its record) from the phone when the agent stops (default: keep, so a later run skips the push). */
  deleteStageOnStop?: boolean;
  /** Passed to the heartbeat: no tick for this long fails the agent's session (default 1.4 s). */
  heartbeatMissMs?: number;
  /** For tests: segment size of stage pushes (resume granularity). */
  segmentBytes?: number;
  /** No push progress for this long aborts the push (default 15 s). */
  stallMs?: number;
}

/** Agents deployed by this process and not yet stopped: stopAllAdbAgents() ends them (app exit, Ctrl-C). */
const live = new Set<DeployedAgent>();

/**
 * Stops every agent this process deployed over adb. For the app's quit path: an agent whose tunnel closes exits
 * by itself, but one that never got a connection only exits after its idle timeout, and this also frees the phone.
 */
export async function stopAllAdbAgents(): Promise<void> {
  await Promise.all([...live].map((a) => a.stop().catch(() => undefined)));
}

export class AdbDeployer implements StageDeployer {
  readonly description: string;

  constructor(private readonly adb: Adb, private readonly agentBinaries: Record<string, string>, private readonly options: AdbDeployerOptions = {}) {
    this.description = `adb server ${adb.endpoint.host}:${adb.endpoint.port}`;
  }

  async deploy(serial: string, stageFile: string, opts: { memoryBudgetBytes: number; onProgress?: (p: PushProgress) => void; signal?: AbortSignal }): Promise<DeployedAgent> {
    const { adb } = this;
    const signal = opts.signal;
    const file = basename(stageFile);
    let started: { remoteDir: string } | undefined;
    let client: AgentClient | undefined;
    let heartbeat: Heartbeat | undefined;
    const cleanUp = async () => {
      heartbeat?.stop();
      client?.close();
      if (started) await stopAgent(adb, serial, started.remoteDir, STOP_SHELL_TIMEOUT_MS).catch(() => undefined);
    };
    try {
      const installed = await installAgent(adb, serial, {
        agents: this.agentBinaries,
        signal,
        onProgress: (p) => opts.onProgress?.({ file: 'agent', ...p }),
      });
      // The agent runs in its install folder, so LOAD_STAGE gets a path relative to it: the same string works on a
      // phone and in a virtual phone's sandbox. The agent starts only after the stage is verified and in place.
      const stagePath = file;
      await syncFile(adb, serial, stageFile, `${installed.remoteDir}/${stagePath}`, {
        mode: 0o644,
        signal,
        stallMs: this.options.stallMs,
        segmentBytes: this.options.segmentBytes,
        onProgress: (p) => opts.onProgress?.({ file, ...p }),
      });
      started = installed;
      const agent = await startAgent(adb, serial, installed, { memoryBudgetMb: Math.ceil(opts.memoryBudgetBytes / 2 ** 20), signal });
      const tunnel = await openTcp(adb, serial, agent.port);
      try {
        client = await AgentClient.connect(tunnel, { token: agent.token, label: serial, timeoutMs: AGENT_REQUEST_TIMEOUT_MS });
      } catch (err) {
        const tail = await readAgentLogTail(adb, serial, installed.remoteDir);
        throw new Error(`${(err as Error).message}\nLast lines of agent.log on ${serial}:\n${tail}`);
      }
      const connected = client;
      heartbeat = await startHeartbeat(adb, serial, agent.pid, {
        missMs: this.options.heartbeatMissMs,
        onDead: (_kind, message) => connected.terminate('heartbeat', message),
      });
      const onAbort = () => connected.terminate('aborted', `the run was cancelled; the agent on ${serial} is being stopped`);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();

      let stopping: Promise<void> | undefined;
      const deployed: DeployedAgent = {
        serial,
        client: connected,
        stagePath,
        stop: () => {
          stopping ??= (async () => {
            signal?.removeEventListener('abort', onAbort);
            heartbeat?.stop();
            if (connected.isOpen && !connected.busy) await connected.shutdown({ timeoutMs: SHUTDOWN_TIMEOUT_MS }).catch(() => undefined);
            connected.close();
            await stopAgent(adb, serial, installed.remoteDir, STOP_SHELL_TIMEOUT_MS).catch(() => undefined);
            if (this.options.deleteStageOnStop) {
              const remote = `${installed.remoteDir}/${stagePath}`;
              const doomed = [remote, `${remote}.sha256`, `${remote}.partial`, `${remote}.partial.sha256`, `${remote}.partial.seg`];
              await runShell(adb, serial, `rm -f ${doomed.map(shellQuote).join(' ')}`, { timeoutMs: STOP_SHELL_TIMEOUT_MS }).catch(() => undefined);
            }
            live.delete(deployed);
          })();
          return stopping;
        },
        diagnose: async () => {
          const reach = await runShell(adb, serial, 'echo ok', { timeoutMs: 3000 }).then(() => '', (e: Error) =>
            /failed: (?:Failure: )?(.*)$/s.exec(e.message)?.[1] ?? e.message);
          if (reach) return `phone ${serial} no longer answers over adb (${reach.replace(/^'(.*)'$/, '$1')}): unplugged, crashed or rebooted`;
          const tail = await readAgentLogTail(adb, serial, installed.remoteDir, 15);
          return `last lines of agent.log on ${serial}:\n${tail}`;
        },
      };
      live.add(deployed);
      return deployed;
    } catch (e) {
      await cleanUp();
      throw e;
    }
  }
}
