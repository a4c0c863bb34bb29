// `confidant generate --model DIR [--run runs/<id>] --prompt "..."`: continues a prompt with onnxruntime on this
// machine (the base model, or base + the run's adapter), streaming the text to stdout as it is generated.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { bundledPaths } from '../../core/paths.js';
import { loadTokenizer } from '../../core/model/tokenizer.js';
import { loadLlmWeights } from '../../core/onnx/ort-llm-weights.js';
import { OrtLanguageModel } from '../../core/onnx/ort-generate.js';
import { generateTextStream } from '../../core/onnx/ort-text.js';
import { UsageError, parseCount } from '../args.js';

const USAGE = 'usage: confidant generate [--model DIR] [--run runs/<id>] --prompt "..." [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S]';

function parseNumber(text: string | undefined, what: string, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`${what} must be a number from ${min} to ${max}, got "${text}"`);
  return n;
}

/** The model the run trained (run.json model.dir) unless --model says otherwise; else the bundled model. */
async function modelDirOf(model: string | undefined, run: string | undefined): Promise<string> {
  if (model) return resolve(model);
  if (run) {
    const path = join(run, 'run.json');
    const json = JSON.parse(await readFile(path, 'utf8').catch(() => { throw new Error(`${path} is missing: is ${run} a run folder?`); })) as { model?: { dir?: string } };
    if (json.model?.dir) return json.model.dir;
  }
  return bundledPaths().modelDir;
}

export async function generateCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' }, run: { type: 'string' }, prompt: { type: 'string' }, 'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
    },
  });
  if (values.prompt === undefined) throw new UsageError(USAGE);
  const modelDir = await modelDirOf(values.model, values.run);
  const options = {
    maxNewTokens: parseCount(values['max-new-tokens'], '--max-new-tokens', 128),
    temperature: parseNumber(values.temperature, '--temperature', 0, 0, 100),
    topP: parseNumber(values['top-p'], '--top-p', 1, 0, 1),
    seed: parseCount(values.seed, '--seed', 0, 0),
  };
  const { config, weights, loraScale } = await loadLlmWeights(modelDir, values.run ? join(values.run, 'adapter') : undefined);
  const tok = await loadTokenizer(modelDir);
  const model = await OrtLanguageModel.create(config, weights, { loraScale });
  // Ctrl-C stops generating (the text so far stays printed) instead of killing the process mid-line.
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  try {
    const stream = generateTextStream(model, tok, values.prompt, { ...options, stopIds: config.eosTokenIds }, abort.signal);
    process.stdout.write(values.prompt);
    for await (const piece of stream.pieces) process.stdout.write(piece);
    const stats = await stream.done;
    process.stdout.write('\n');
    const decodeRate = stats.newTokens > 1 ? `, ${((stats.newTokens - 1) / (stats.decodeMs / 1000)).toFixed(1)} tokens/s` : '';
    console.error(`${stats.newTokens} tokens (${stats.reason})${decodeRate}${loraScale !== undefined ? `, adapter of ${values.run}` : ''}`);
  } finally {
    process.off('SIGINT', onSigint);
    await model.close();
  }
}
