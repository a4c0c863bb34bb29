// One entry point for exporting a finished run, shared by `confidant export` and the app's Export step:
// peft (the run's adapter folder copied), gguf (a llama.cpp LoRA adapter file) or merged (a Hugging Face model folder
// with the adapter merged into the base weights). Reports what it wrote; the writers themselves live beside it.
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { copyRunAdapter } from './copy-adapter.js';
import { checkFileTarget, checkFolderTarget } from './atomic-output.js';
import { writeGgufLora } from './gguf-lora.js';
import { writeMergedModel } from './merged.js';
import { openRunBaseModel, readRunAdapter } from './run-adapter.js';

export const EXPORT_FORMATS = ['peft', 'gguf', 'merged'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportRunOptions {
  runDir: string;
  format: ExportFormat;
  /** A folder for peft and merged, a file (e.g. adapter.gguf) for gguf. */
  out: string;
  /** Replace an existing output (atomically). Default false: refuse. */
  overwrite?: boolean;
  /** The base model folder, when it is no longer where run.json says (gguf and merged read it). */
  modelDir?: string;
  /** GGUF tensor precision (default f32). */
  ggufDtype?: 'f32' | 'f16';
}

export interface ExportRunResult {
  format: ExportFormat;
  /** The absolute output path (folder or file). */
  out: string;
  /** What was written: names inside the output folder (or the file's own name for gguf) with sizes. */
  files: { name: string; bytes: number }[];
}

async function folderFiles(dir: string): Promise<{ name: string; bytes: number }[]> {
  const names = (await readdir(dir)).sort();
  return Promise.all(names.map(async (name) => ({ name, bytes: (await stat(join(dir, name))).size })));
}

export async function exportRun(o: ExportRunOptions): Promise<ExportRunResult> {
  const overwrite = o.overwrite ?? false;
  const out = resolve(o.out);
  switch (o.format) {
    case 'peft':
      await copyRunAdapter(o.runDir, out, { overwrite });
      return { format: 'peft', out, files: await folderFiles(out) };
    case 'gguf': {
      // Refuse before reading the base and the adapter, so a mistaken path costs nothing.
      await checkFileTarget(out, overwrite);
      const base = await openRunBaseModel(o.runDir, o.modelDir);
      const { bytes } = await writeGgufLora(await readRunAdapter(o.runDir, base), base.config, out, { dtype: o.ggufDtype });
      return { format: 'gguf', out, files: [{ name: basename(out), bytes }] };
    }
    case 'merged': {
      await checkFolderTarget(out, overwrite);
      const base = await openRunBaseModel(o.runDir, o.modelDir);
      const files = await writeMergedModel(base, await readRunAdapter(o.runDir, base), out, { overwrite });
      return { format: 'merged', out, files };
    }
    default:
      throw new Error(`unknown export format ${JSON.stringify(o.format)}: use one of ${EXPORT_FORMATS.join(', ')}`);
  }
}
