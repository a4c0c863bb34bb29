// `confidant export --run runs/<id> --format peft --out DIR`: writes a finished run's adapter in a chosen format.
// PEFT for now (the run folder already holds it); GGUF LoRA and merged models come with the export step.
import { parseArgs } from 'node:util';
import { copyRunAdapter } from '../../core/export/copy-adapter.js';
import { UsageError } from '../args.js';

export async function exportCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { run: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' }, overwrite: { type: 'boolean' } } });
  if (!values.run || !values.out) throw new UsageError('usage: confidant export --run runs/<id> --format peft --out DIR [--overwrite]');
  const format = values.format ?? 'peft';
  if (format !== 'peft') throw new UsageError(`--format ${format} is not available yet: use --format peft`);
  const out = await copyRunAdapter(values.run, values.out, { overwrite: values.overwrite });
  console.log(`PEFT adapter written to ${out}`);
}
