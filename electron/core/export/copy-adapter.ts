// Copies a finished run's PEFT adapter to a chosen folder atomically (copy beside the target, then one rename), and
// never replaces a non-empty folder unless asked. Shared by `confidant export` and the app's Export step.
import { cp, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

async function nonEmpty(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length > 0;
  } catch {
    return false;
  }
}

export async function copyRunAdapter(runDir: string, outDirIn: string, opts: { overwrite?: boolean } = {}): Promise<string> {
  const adapter = join(resolve(runDir), 'adapter');
  if (!(await stat(join(adapter, 'adapter_model.safetensors')).catch(() => null))) {
    throw new Error(`${runDir} has no finished adapter (${adapter}/adapter_model.safetensors): did the run finish?`);
  }
  const out = resolve(outDirIn);
  if ((await nonEmpty(out)) && !opts.overwrite) throw new Error(`${out} exists and is not empty: choose another folder or allow overwriting`);
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await cp(adapter, tmp, { recursive: true });
  await rm(out, { recursive: true, force: true });
  await rename(tmp, out);
  return out;
}
