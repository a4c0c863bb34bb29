// Removes everything Confidant put on a phone: stops its agents (a training agent and a probe) and deletes its folder
// under /data/local/tmp (agent binaries, stage files, partial pushes, logs). What a user runs before handing a phone
// back; training itself keeps stage files so the next run skips the push (AdbDeployerOptions.deleteStageOnStop
// removes them per run instead).
import type { Adb } from '../adb/client.js';
import { AGENT_DIR, stopAgent } from '../adb/agent-deploy.js';
import { runShellChecked, shellQuote } from '../adb/shell.js';
import { PROBE_DIR } from './agent-probe.js';

const SHELL_TIMEOUT_MS = 20_000;

/** Returns the bytes freed (what `du` reported before the delete; 0 when nothing was there). */
export async function removeConfidantFiles(adb: Adb, serial: string): Promise<{ bytesFreed: number }> {
  for (const dir of [AGENT_DIR, PROBE_DIR]) await stopAgent(adb, serial, dir, SHELL_TIMEOUT_MS);
  const dir = shellQuote(AGENT_DIR);
  // du -sk is in toybox (Android) and coreutils; a missing folder prints nothing.
  const du = await runShellChecked(adb, serial, `if [ -d ${dir} ]; then du -sk ${dir}; fi`, { timeoutMs: SHELL_TIMEOUT_MS });
  await runShellChecked(adb, serial, `rm -rf ${dir}`, { timeoutMs: SHELL_TIMEOUT_MS });
  const left = await runShellChecked(adb, serial, `if [ -e ${dir} ]; then echo left; fi`, { timeoutMs: SHELL_TIMEOUT_MS });
  if (left.trim() === 'left') throw new Error(`${serial}: ${AGENT_DIR} could not be removed`);
  const kib = Number(/^(\d+)/.exec(du.trim())?.[1] ?? 0);
  return { bytesFreed: kib * 1024 };
}
