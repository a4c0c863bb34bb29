// Test helper: the real native agent binary started locally (no adb) through the core's startLocalAgent, with the
// checkout's build as the default binary. Not a fake agent and not the adb deployment path.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { findRepoRoot } from '../../electron/core/paths.js';
import { startLocalAgent as startCore, type LocalAgent, type LocalAgentOptions } from '../../electron/core/deploy/local-agent.js';

export type { LocalAgent };

export function repoRoot(): string {
  return findRepoRoot();
}

export function defaultAgentBinary(): string {
  return process.env.CONFIDANT_AGENT_BINARY ?? join(repoRoot(), 'build', 'native', 'android-agent', 'confidant-agent');
}

/** A skip reason when the agent binary is not built (throws in CI, where it must be), else false. */
export function needLocalAgent(binary = defaultAgentBinary()): string | false {
  if (existsSync(binary)) return false;
  const msg = `the native agent ${binary} is not built: run npm run build:native`;
  if (process.env.CI === 'true') throw new Error(`CI must not skip: ${msg}`);
  process.stderr.write(`\n*** SKIPPING: ${msg}\n`);
  return msg;
}

export function startLocalAgent(opts: Partial<LocalAgentOptions> = {}): Promise<LocalAgent> {
  return startCore({ ...opts, binary: opts.binary ?? defaultAgentBinary() });
}
