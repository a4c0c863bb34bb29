// Deploys a stage to a phone through an adb server: agent binary for its ABI + token, the stage file with progress
// and verification, the agent started detached, then an adb tunnel (openTcp, nothing to clean up) and the handshake.
// Not the pipeline: it hands back a connected AgentClient.
import { basename } from 'node:path';
import type { Adb } from '../adb/client.js';
import { deployAgent, stopAgent } from '../adb/agent-deploy.js';
import { pushFile } from '../adb/push.js';
import { openTcp } from '../adb/tunnel.js';
import { AgentClient } from '../protocol/agent-client.js';
import type { DeployedAgent, PushProgress, StageDeployer } from './stage-deployer.js';

/** Long enough for one FORWARD/BACKWARD of a large stage on a slow phone. */
const AGENT_REQUEST_TIMEOUT_MS = 120_000;

export class AdbDeployer implements StageDeployer {
  readonly description: string;

  constructor(private readonly adb: Adb, private readonly agentBinaries: Record<string, string>) {
    this.description = `adb server ${adb.endpoint.host}:${adb.endpoint.port}`;
  }

  async deploy(serial: string, stageFile: string, opts: { memoryBudgetBytes: number; onProgress?: (p: PushProgress) => void; signal?: AbortSignal }): Promise<DeployedAgent> {
    const agent = await deployAgent(this.adb, serial, { agents: this.agentBinaries, memoryBudgetMb: Math.ceil(opts.memoryBudgetBytes / 2 ** 20) });
    const stopOnPhone = () => stopAgent(this.adb, serial, agent.remoteDir).catch(() => undefined);
    try {
      // The agent runs in its install folder (agent.remoteDir), so LOAD_STAGE gets a path relative to it: the same
      // string works on a phone and in a virtual phone's sandbox.
      const stagePath = basename(stageFile);
      await pushFile(this.adb, serial, stageFile, `${agent.remoteDir}/${stagePath}`, {
        mode: 0o644,
        signal: opts.signal,
        onProgress: (bytesSent, bytesTotal) => opts.onProgress?.({ file: basename(stageFile), bytesSent, bytesTotal }),
      });
      const tunnel = await openTcp(this.adb, serial, agent.port);
      const client = await AgentClient.connect(tunnel, { token: agent.token, label: serial, timeoutMs: AGENT_REQUEST_TIMEOUT_MS });
      return {
        serial,
        client,
        stagePath,
        stop: async () => {
          await client.shutdown().catch(() => undefined);
          client.close();
          await stopOnPhone();
        },
      };
    } catch (e) {
      await stopOnPhone();
      throw e;
    }
  }
}
