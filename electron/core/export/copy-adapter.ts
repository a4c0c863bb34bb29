// Copies a finished run's PEFT adapter to a chosen folder atomically (copy into a temporary sibling, fsync, one
// rename), and never replaces a non-empty folder unless asked. The "peft" format of export-run.ts.
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { copyFileDurably, writeFolderAtomically } from './atomic-output.js';

export async function copyRunAdapter(runDir: string, outDirIn: string, opts: { overwrite?: boolean } = {}): Promise<string> {
  const adapter = join(resolve(runDir), 'adapter');
  if (!(await stat(join(adapter, 'adapter_model.safetensors')).catch(() => null))) {
    throw new Error(`${runDir} has no finished adapter (${adapter}/adapter_model.safetensors): did the run finish?`);
  }
  const out = resolve(outDirIn);
  await writeFolderAtomically(out, opts.overwrite ?? false, async (tempDir) => {
    for (const name of await readdir(adapter)) await copyFileDurably(join(adapter, name), join(tempDir, name));
  });
  return out;
}
