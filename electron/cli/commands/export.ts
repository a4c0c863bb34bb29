// `confidant export --run runs/<id> --format peft|gguf|merged --out PATH [--overwrite] [--model DIR] [--dtype f32|f16]
// [--json]`: writes a finished run's adapter as a PEFT folder, a llama.cpp GGUF LoRA file or a merged Hugging Face
// model folder (export-run.ts does the work; this parses arguments and prints what was written).
import { parseArgs } from 'node:util';
import { EXPORT_FORMATS, exportRun, type ExportFormat } from '../../core/export/export-run.js';
import { UsageError, mib } from '../args.js';

const USAGE = 'usage: confidant export --run runs/<id> --format peft|gguf|merged --out PATH [--overwrite] [--model DIR] [--dtype f32|f16] [--json]';

export async function exportCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      run: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean' },
      model: { type: 'string' },
      dtype: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (!values.run || !values.out) throw new UsageError(USAGE);
  const format = values.format ?? 'peft';
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format ${format}: use one of ${EXPORT_FORMATS.join(', ')}`);
  if (values.dtype !== undefined && (format !== 'gguf' || (values.dtype !== 'f32' && values.dtype !== 'f16'))) {
    throw new UsageError('--dtype f32|f16 applies to --format gguf only (merged keeps the base model\'s dtype)');
  }
  if (values.model !== undefined && format === 'peft') throw new UsageError('--model is read by --format gguf and merged only');
  const result = await exportRun({
    runDir: values.run,
    format: format as ExportFormat,
    out: values.out,
    overwrite: values.overwrite,
    modelDir: values.model,
    ggufDtype: values.dtype as 'f32' | 'f16' | undefined,
  });
  if (values.json) {
    console.log(JSON.stringify(result));
    return;
  }
  const what = { peft: 'PEFT adapter', gguf: 'GGUF LoRA adapter', merged: 'merged model' }[result.format];
  console.log(`${what} written to ${result.out}`);
  for (const f of result.files) console.log(`  ${f.name.padEnd(32)} ${mib(f.bytes).padStart(12)}`);
}
