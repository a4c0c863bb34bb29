// Test tiers that need an outside tool (adb, chromium, ...) skip loudly when it is missing locally, and fail in CI
// (CI=true), where .ci/run installs every tool: CI never skips a tier silently.
import { spawnSync } from 'node:child_process';

/** Returns a skip reason (string) when `tool` is absent locally; throws in CI; returns false when present. */
export function needTool(tool: string): string | false {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).status === 0;
  if (found) return false;
  const msg = `${tool} is not installed: this tier needs it (apt-get install ${tool})`;
  if (process.env.CI === 'true') throw new Error(`CI must not skip: ${msg}`);
  process.stderr.write(`\n*** SKIPPING: ${msg}\n`);
  return msg;
}
