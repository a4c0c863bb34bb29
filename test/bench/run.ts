// npm run bench: the agent's compute engine against peers measured in the same run (onnxruntime on the same layer
// graph, llama.cpp on the same weights), at the same thread count, on random-weight Llama models. Prints tables,
// then as the last stdout line one JSON object. Progress goes to stderr. Not a test: nothing here asserts speed.
//
// Options: --threads N (default: this machine's available parallelism, or CONFIDANT_BENCH_THREADS),
//          --quick (T=128 only, one timed run each: checks the harness, numbers meaningless), --keep (keep the temp
//          folder with the random models, stages and GGUF).
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultAgentBinary, repoRoot } from '../support/local-agent.js';
import { agentBenchArgs, agentHasThreadsFlag } from './agent-bench.js';
import { benchBackward } from './backward.js';
import { SMALL_MODEL, TINYLLAMA_LAYER } from './bench-shapes.js';
import { benchLayerForward, packLayerStage } from './layer-forward.js';
import { benchMemory } from './memory.js';
import { measurePeak } from './peak.js';
import { benchPrefill } from './prefill.js';
import { benchPrge, PRGE_SEQ_LENS, type PrgeResult } from './prge.js';
import { writeRandomLlama } from './random-model.js';
import { buildSummary, renderTables, type BenchResults, type Section } from './summary.js';

interface Args {
  threads: number;
  quick: boolean;
  keep: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { threads: Number(process.env.CONFIDANT_BENCH_THREADS ?? availableParallelism()), quick: false, keep: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--quick') args.quick = true;
    else if (argv[i] === '--keep') args.keep = true;
    else if (argv[i] === '--threads') args.threads = Number(argv[++i]);
    else throw new Error(`unknown option ${argv[i]} (options: --threads N, --quick, --keep)`);
  }
  if (!Number.isInteger(args.threads) || args.threads < 1) throw new Error(`--threads must be a positive integer, got ${args.threads}`);
  return args;
}

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Runs a section; a failure becomes a reason in the report instead of ending the run. */
async function section<T>(name: string, fn: () => Promise<T>): Promise<Section<T>> {
  log(`[${name}]`);
  const t0 = performance.now();
  try {
    const r = await fn();
    log(`[${name}] done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return r;
  } catch (err) {
    const reason = `${name} failed: ${(err as Error).stack ?? String(err)}`;
    log(reason);
    return { failed: reason };
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = repoRoot();
  const binary = defaultAgentBinary();
  if (!existsSync(binary)) throw new Error(`the agent ${binary} is not built: run npm run build (npm run bench does)`);
  const seqLens = args.quick ? [128] : [128, 512];
  const headlineT = Math.max(...seqLens);
  const threadsFlag = agentHasThreadsFlag(binary);
  log(`bench: ${args.threads} threads${threadsFlag ? '' : ' (this agent build has no --threads flag: it runs with its own default)'}${args.quick ? ', QUICK mode: numbers are not meaningful' : ''}`);

  const peak = await measurePeak(root, args.threads);
  log(`FMA peak: ${peak.gflops ?? 'unknown'} GFLOP/s (${peak.source})`);

  const work = await mkdtemp(join(tmpdir(), 'confidant-bench-'));
  try {
    const big = join(work, TINYLLAMA_LAYER.key);
    const small = join(work, SMALL_MODEL.key);
    log('writing random models');
    const bigConfig = await writeRandomLlama(big, TINYLLAMA_LAYER, 1);
    const smallConfig = await writeRandomLlama(small, SMALL_MODEL, 2);
    const bigStage = await packLayerStage(big, work, 'f32');
    const smallStage = await packLayerStage(small, work, 'f32');

    const layer: BenchResults['layer'] = [];
    for (const [shape, dir, c, stage] of [[TINYLLAMA_LAYER, big, bigConfig, bigStage.path], [SMALL_MODEL, small, smallConfig, smallStage.path]] as const) {
      layer.push({ shape, r: await section(`layer forward, ${shape.key}`, () => benchLayerForward(dir, c, stage, seqLens, args.threads, args.quick, log)) });
    }
    const prefill = await section('prefill, small model', () => benchPrefill(small, smallConfig, work, seqLens, args.threads, args.quick, log));
    const backward = await section('backward/forward', () => benchBackward(bigConfig, bigStage.path, seqLens, args.threads, args.quick, log));
    const prge = await section('P-RGE batched forward', async () => {
      const results: PrgeResult[] = [];
      const reasons: string[] = [];
      for (const T of PRGE_SEQ_LENS) {
        const r = await benchPrge(bigConfig, bigStage.path, T, args.threads, args.quick, log);
        if (r.result) results.push(r.result);
        else reasons.push(`T=${T}: ${r.reason}`);
      }
      return { results, reason: reasons.length ? reasons.join('; ') : undefined };
    });
    const memory = await section('peak RSS per weight format', () => benchMemory(big, bigConfig, work, 128, args.threads, log));

    const results: BenchResults = {
      threads: args.threads, quick: args.quick, binary, agentArgs: agentBenchArgs(args.threads, binary), threadsFlag, headlineT, peak,
      layer, prefill, backward, prge, memory,
    };
    process.stdout.write(`${renderTables(results)}\n`);
    process.stdout.write(`${JSON.stringify(buildSummary(results))}\n`);
  } finally {
    if (args.keep) log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0), // onnxruntime/llama.cpp native threads must not keep the process alive
  (err: unknown) => {
    log(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
