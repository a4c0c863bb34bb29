// How a planned stage gets onto a device and becomes a connected agent: the interface the trainer uses, so the
// same training code runs over adb (phones, virtual phones) or over directly spawned agents (no adb installed).
import type { AgentClient } from '../protocol/agent-client.js';

export interface DeployedAgent {
  serial: string;
  client: AgentClient;
  /** Path of the stage file as the agent sees it (on the device). */
  stagePath: string;
  /** Stops the agent and releases its tunnel; safe to call twice. */
  stop(): Promise<void>;
  /** After a failure: what the device can tell about it (e.g. the agent's log tail); may reject when it is gone. */
  diagnose?(): Promise<string>;
}

export interface PushProgress {
  file: string;
  bytesSent: number;
  bytesTotal: number;
  /** Speed over the last seconds and time left at it (null until known); absent where nothing is pushed. */
  bytesPerSec?: number;
  etaMs?: number | null;
  /** 'checking' the phone, 'pushing', 'verifying', 'skipped' (the phone had the same sha256) or 'done'. */
  phase?: 'checking' | 'pushing' | 'verifying' | 'skipped' | 'done';
  /** 1 for the first try; later tries resume from resumedFromBytes. */
  attempt?: number;
  resumedFromBytes?: number;
}

export interface StageDeployer {
  /** Said to the user: which path the run takes, e.g. "adb server 127.0.0.1:5037". */
  readonly description: string;
  deploy(serial: string, stageFile: string, opts: { memoryBudgetBytes: number; onProgress?: (p: PushProgress) => void; signal?: AbortSignal }): Promise<DeployedAgent>;
}
