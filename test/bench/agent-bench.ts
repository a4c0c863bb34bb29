// The real native agent as the benchmarked engine: started locally with the benchmark's thread count, and each
// request timed twice: round trip over the AgentClient (host view) and the agent's own compute time (the STATS
// busy_us delta around it). Not a test helper: no assertions.
import { spawnSync } from 'node:child_process';
import type { AgentClient } from '../../electron/core/protocol/agent-client.js';
import { AgentError } from '../../electron/core/protocol/agent-client.js';
import type { Tensor } from '../../electron/core/protocol/messages.js';
import { defaultAgentBinary, startLocalAgent, type LocalAgent } from '../support/local-agent.js';
import { gaussian } from './random-model.js';

/** Long limit per request: the reference engine may take minutes on a TinyLlama layer at T=512. */
const REQUEST_TIMEOUT_MS = 900_000;

export interface BenchAgent {
  agent: LocalAgent;
  client: AgentClient;
  /** True when the agent took --threads N; false when this build has no such flag (it runs its default). */
  threadsFlag: boolean;
  /** cpu_threads from HELLO: what the agent says it uses. */
  helloThreads: number;
  backends: string[];
}

let helpCache: string | undefined;

function agentHelp(binary: string): string {
  if (helpCache === undefined) {
    const r = spawnSync(binary, ['--help'], { encoding: 'utf8', timeout: 10_000 });
    helpCache = `${r.stdout}${r.stderr}`;
  }
  return helpCache;
}

/** Whether this agent build understands --threads (its --help lists it). */
export function agentHasThreadsFlag(binary = defaultAgentBinary()): boolean {
  return agentHelp(binary).includes('--threads');
}

/**
 * --threads N when the build has it; --opencl off when it has that: the peers run on the CPU only, and no layer
 * split is set, so OpenCL would only add start-up work and PROFILE entries.
 */
export function agentBenchArgs(threads: number, binary = defaultAgentBinary()): string[] {
  const args: string[] = [];
  if (agentHasThreadsFlag(binary)) args.push('--threads', String(threads));
  if (agentHelp(binary).includes('--opencl')) args.push('--opencl', 'off');
  return args;
}

export async function startBenchAgent(threads: number): Promise<BenchAgent> {
  const threadsFlag = agentHasThreadsFlag();
  const agent = await startLocalAgent({ timeoutMs: REQUEST_TIMEOUT_MS, extraArgs: agentBenchArgs(threads) });
  const caps = agent.client.capabilities;
  return { agent, client: agent.client, threadsFlag, helloThreads: caps.cpuThreads, backends: caps.backends };
}

export async function stopBenchAgent(a: BenchAgent): Promise<void> {
  await a.client.shutdown().catch(() => undefined);
  await a.agent.stop();
}

/** Runs `op` between two STATS requests: wall = round trip of op alone, busy = the agent's compute time for it. */
export async function timedRequest<T>(client: AgentClient, op: () => Promise<T>): Promise<{ result: T; wallMs: number; busyMs: number }> {
  const before = await client.stats();
  const t0 = performance.now();
  const result = await op();
  const wallMs = performance.now() - t0;
  const after = await client.stats();
  return { result, wallMs, busyMs: (after.busyUs - before.busyUs) / 1000 };
}

/** f32 [B, T, C] hidden state, N(0, 1) (what a middle stage receives). */
export function hiddenInput(B: number, T: number, C: number, seed: number): Tensor {
  return { dtype: 'f32', dims: [B, T, C], data: gaussian(B * T * C, seed) };
}

/** A reason string for a null result: the agent's own words when it refused. */
export function reasonOf(err: unknown): string {
  if (err instanceof AgentError) return `agent refused ${err.command}: ${err.codeName}: ${err.agentMessage}`;
  return (err as Error).message ?? String(err);
}

export function isUnknownCommand(err: unknown): boolean {
  return err instanceof AgentError && err.codeName === 'UNKNOWN_COMMAND';
}
