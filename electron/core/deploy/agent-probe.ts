// Asks a phone's agent what it can do (its HELLO: ABI, CPU threads, the SIMD level, the OpenCL device or why there
// is none), the GPU facts the planner's head split depends on. The agent runs from a folder of its own, so an agent
// that is training on the phone is left alone; it is stopped again before this returns.
import type { Adb } from '../adb/client.js';
import { AGENT_DIR, installAgent, readAgentLogTail, startAgent, stopAgent } from '../adb/agent-deploy.js';
import { openTcp } from '../adb/tunnel.js';
import { AgentClient, type AgentCapabilities } from '../protocol/agent-client.js';

export const PROBE_DIR = `${AGENT_DIR}/probe`;
/** Enough for HELLO; the probe loads no stage. */
const PROBE_BUDGET_MB = 64;

export async function probeAgentCapabilities(adb: Adb, serial: string, agentBinaries: Record<string, string>, opts: { signal?: AbortSignal } = {}): Promise<AgentCapabilities> {
  const installed = await installAgent(adb, serial, { agents: agentBinaries, remoteDir: PROBE_DIR, signal: opts.signal });
  try {
    const agent = await startAgent(adb, serial, installed, { memoryBudgetMb: PROBE_BUDGET_MB, signal: opts.signal });
    let client: AgentClient | undefined;
    try {
      client = await AgentClient.connect(await openTcp(adb, serial, agent.port), { token: agent.token, label: serial });
      return client.capabilities;
    } catch (err) {
      throw new Error(`${(err as Error).message}\nLast lines of the probe's agent.log on ${serial}:\n${await readAgentLogTail(adb, serial, PROBE_DIR)}`);
    } finally {
      client?.close();
    }
  } finally {
    await stopAgent(adb, serial, PROBE_DIR).catch(() => undefined);
  }
}
