// Measures the P-RGE forward-only pipeline: 2 agents, each pinned to its own core (taskset) with 1 thread and half
// the layers, against 1 agent with every layer pinned to one core, on a random-weight model large enough that
// compute dominates the host relay. Prints the step throughput of both and the ratio (goal >= 1.7x: the ideal for
// 2 balanced stages and m micro-batches is 2m / (m + 1), 1.78x at m = 8). Not a test: timings only.
//   npx tsc -p tsconfig.json && node build/test/bench/zo-pipeline.js [--steps N] [--micros M]
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openModelFolder, type ModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { collateBatch, type Batch } from '../../electron/core/data/samples.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import type { StageHandle } from '../../electron/core/train/pipeline.js';
import { zoStep } from '../../electron/core/train/zo-step.js';
import { startLocalAgent, type LocalAgent } from '../support/local-agent.js';
import { writeRandomLlama } from './random-model.js';
import { ZO_PIPELINE } from './bench-shapes.js';

const SHAPE = ZO_PIPELINE;
const SEQ_LEN = 64;
const QUERIES = 4; // 8 copies per micro-batch of one sequence
const RANK = 8;

const { values } = parseArgs({ options: { steps: { type: 'string', default: '3' }, micros: { type: 'string', default: '8' }, 'queries-per-op': { type: 'string', default: String(QUERIES) } } });
const STEPS = Number(values.steps);
const MICROS = Number(values.micros);
const QUERIES_PER_OP = Number(values['queries-per-op']);
const OPS = MICROS * (QUERIES / QUERIES_PER_OP); // ZO_FORWARD ops per step and stage

/** Pins every thread of `pid` (the agent's pool is already started) to `cpu`. */
function pin(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}

async function startStages(folder: ModelFolder, dir: string, bounds: [number, number][], agents: LocalAgent[]): Promise<StageHandle[]> {
  const lora = initialLora(folder.config, 0, SHAPE.numLayers, RANK, LORA_MODULES, 5);
  return Promise.all(bounds.map(async ([layerStart, layerEnd], s) => {
    const file = join(dir, `stage-${layerStart}-${layerEnd}.cfst`);
    await packStage(folder, { layerStart, layerEnd, hasEmbedding: layerStart === 0, hasHead: layerEnd === SHAPE.numLayers }, file);
    const agent = await startLocalAgent({ label: `layers ${layerStart}-${layerEnd}`, extraArgs: ['--threads', '1'], timeoutMs: 120_000 });
    agents.push(agent);
    pin(agent.process.pid!, s);
    await agent.client.loadStage({ path: file, loraRank: RANK, loraAlpha: 2 * RANK, targetMask: targetMask(LORA_MODULES), flags: 0 });
    await agent.client.setLora(lora.filter((t) => {
      const layer = Number(/^model\.layers\.(\d+)\./.exec(t.name)![1]);
      return layer >= layerStart && layer < layerEnd;
    }));
    return { serial: `layers ${layerStart}-${layerEnd} on cpu ${s}`, client: agent.client };
  }));
}

function syntheticMicros(step: number): Batch[] {
  return Array.from({ length: MICROS }, (_, i) => {
    const tokens = Int32Array.from({ length: SEQ_LEN }, (_, t) => 3 + ((step * 131 + i * 17 + t * 7) % (SHAPE.vocabSize - 3)));
    const targets = Int32Array.from(tokens, (_, t) => tokens[(t + 1) % SEQ_LEN]);
    return collateBatch([{ tokens, targets, mask: new Float32Array(SEQ_LEN).fill(1), docIndex: 0, chunkIndex: i }]);
  });
}

/** Median wall time of a ZO step after one warm-up step, and the losses (both layouts must agree). */
async function timeSteps(stages: StageHandle[]): Promise<{ medianMs: number; losses: number[]; relayMiB: number; busyMsPerStep: number[] }> {
  const times: number[] = [];
  let busyBefore: number[] = [];
  const losses: number[] = [];
  let relayBytes = 0;
  for (let step = 1; step <= STEPS + 1; step++) {
    if (step === 2) busyBefore = await Promise.all(stages.map(async (s) => (await s.client.stats()).busyUs));
    const t0 = performance.now();
    const r = await zoStep(stages, syntheticMicros(step), { seed: 99, step, lr: 1e-3, queries: QUERIES, queriesPerOp: QUERIES_PER_OP, eps: 1e-2 });
    if (step > 1) times.push(performance.now() - t0);
    losses.push(r.loss);
    relayBytes = r.relayBytes;
  }
  // The agents' own compute time per step: tells pipeline bubbles and host overhead (wall > busy) from cores that
  // slow down when both run (busy of the two stages summing to more than the single agent's).
  const busyAfter = await Promise.all(stages.map(async (s) => (await s.client.stats()).busyUs));
  const busyMsPerStep = busyAfter.map((b, i) => (b - busyBefore[i]) / 1000 / STEPS);
  times.sort((a, b) => a - b);
  return { medianMs: times[Math.floor(times.length / 2)], losses, relayMiB: relayBytes / 2 ** 20, busyMsPerStep };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-zo-bench-'));
  const agents: LocalAgent[] = [];
  try {
    await writeRandomLlama(join(dir, 'model'), SHAPE, 1);
    const folder = await openModelFolder(join(dir, 'model'));
    console.log(`model: ${SHAPE.description}; micro-batch: ${2 * QUERIES} copies x ${SEQ_LEN} tokens, ${MICROS} per step, ` +
      `${2 * QUERIES_PER_OP} copies per op (${OPS} ops per step), ${STEPS} timed steps`);

    const one = await timeSteps(await startStages(folder, dir, [[0, SHAPE.numLayers]], agents));
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    const two = await timeSteps(await startStages(folder, dir, [[0, 2], [2, SHAPE.numLayers]], agents));

    const maxLossDiff = Math.max(...one.losses.map((x, i) => Math.abs(x - two.losses[i])));
    const sequencesPerStep = MICROS; // each micro-batch is one sequence, evaluated 2q times
    console.log(`1 agent, all layers, cpu 0:     ${one.medianMs.toFixed(0)} ms/step, ${(1000 * sequencesPerStep / one.medianMs).toFixed(2)} seq/s, busy ${one.busyMsPerStep.map((x) => x.toFixed(0)).join(' / ')} ms/step`);
    console.log(`2 agents, 2 layers each, cpu 0/1: ${two.medianMs.toFixed(0)} ms/step, ${(1000 * sequencesPerStep / two.medianMs).toFixed(2)} seq/s, relay ${two.relayMiB.toFixed(1)} MiB/step, busy ${two.busyMsPerStep.map((x) => x.toFixed(0)).join(' / ')} ms/step`);
    console.log(`throughput ratio: ${(one.medianMs / two.medianMs).toFixed(2)}x (ideal ${(2 * OPS / (OPS + 1)).toFixed(2)}x); largest step-loss difference ${maxLossDiff.toExponential(1)}`);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
