// The planner's memory model (electron/core/plan/memory.ts) against the agent's measured peak resident memory
// (STATS peak_rss_bytes = VmHWM): real local agents, random-weight Llama models of a few shapes, packed stages in
// several weight formats, 1F1B training steps through the real pipeline runtime (runPass + optimizerStep), and
// for each stage |predicted - measured| / measured must stay under 10%.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import type { WeightFormat } from '../../electron/core/model/quantize.js';
import { runPass, optimizerStep, type StageHandle, type MicroBatch } from '../../electron/core/train/pipeline.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import { matmulRowBlockFor, stageMemory } from '../../electron/core/plan/memory.js';
import { writeRandomLlama } from '../bench/random-model.js';
import type { BenchShape } from '../bench/bench-shapes.js';
import { needLocalAgent, startLocalAgent, type LocalAgent } from '../support/local-agent.js';

const skip = needLocalAgent();

const SHAPES: Record<string, BenchShape> = {
  narrow: { key: 'narrow', description: '', hiddenSize: 256, intermediateSize: 704, numHeads: 8, numKvHeads: 2, headDim: 32, vocabSize: 4096, numLayers: 4, tieWordEmbeddings: true },
  wide: { key: 'wide', description: '', hiddenSize: 512, intermediateSize: 1408, numHeads: 8, numKvHeads: 2, headDim: 64, vocabSize: 8192, numLayers: 4, tieWordEmbeddings: false },
};

interface Case {
  shape: keyof typeof SHAPES;
  format: WeightFormat;
  microBatchSize: number;
  seqLen: number;
  microBatches: number;
  stages: number;
  recompute?: boolean;
  trainA?: boolean;
  /** Load the OpenCL driver (PoCL here: ~79 MiB of its own, which would hide the model's errors); default off. */
  opencl?: boolean;
}

const CASES: Case[] = [
  { shape: 'narrow', format: 'f32', microBatchSize: 2, seqLen: 128, microBatches: 4, stages: 2 },
  { shape: 'wide', format: 'f32', microBatchSize: 4, seqLen: 128, microBatches: 4, stages: 2 },
  { shape: 'wide', format: 'f32', microBatchSize: 4, seqLen: 128, microBatches: 4, stages: 2, opencl: true },
  { shape: 'wide', format: 'q4_0', microBatchSize: 2, seqLen: 256, microBatches: 3, stages: 2 },
  { shape: 'wide', format: 'f16', microBatchSize: 1, seqLen: 512, microBatches: 4, stages: 3, trainA: true },
  { shape: 'wide', format: 'int8', microBatchSize: 4, seqLen: 128, microBatches: 4, stages: 2, recompute: true },
];
const RANK = 8;

function randomBatch(B: number, T: number, vocab: number, seed: number): MicroBatch {
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    tokens[i] = (i * 7919 + seed * 104729) % vocab;
    targets[i] = (i * 31 + seed) % vocab;
  }
  return { batchSize: B, seqLen: T, tokens, targets, mask: new Float32Array(B * T).fill(1), maskSum: B * T };
}

/** Contiguous near-even layer ranges. */
function evenSplit(L: number, S: number): Array<[number, number]> {
  return Array.from({ length: S }, (_, s) => [Math.floor((s * L) / S), Math.floor(((s + 1) * L) / S)]);
}

test('predicted stage memory is within 10% of the agent peak RSS, several shapes / formats / batch shapes', { skip, timeout: 600_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'confidant-plan-mem-'));
  const rows: string[] = [];
  let worst = 0;
  try {
    const folders = new Map<string, string>();
    for (const [name, shape] of Object.entries(SHAPES)) {
      const modelDir = join(dir, name);
      await writeRandomLlama(modelDir, shape, 7);
      folders.set(name, modelDir);
    }
    for (const k of CASES) {
      const folder = await openModelFolder(folders.get(k.shape)!);
      const c = folder.config;
      const agents: LocalAgent[] = [];
      const baseRss: number[] = [];
      try {
        const stages: StageHandle[] = [];
        const shapes = evenSplit(c.numLayers, k.stages).map(([a, b]) => ({ layerStart: a, layerEnd: b, hasEmbedding: a === 0, hasHead: b === c.numLayers }));
        for (const [s, sh] of shapes.entries()) {
          const file = join(dir, `${k.shape}-${k.format}-${sh.layerStart}-${sh.layerEnd}.cfst`);
          await packStage(folder, sh, file, { weightFormat: k.format });
          const agent = await startLocalAgent({ label: `stage ${s}`, extraArgs: ['--opencl', k.opencl ? 'on' : 'off'] });
          agents.push(agent);
          baseRss.push((await agent.client.stats()).rssBytes); // the idle agent (OpenCL driver included) on this machine
          await agent.client.loadStage({ path: file, loraRank: RANK, loraAlpha: 2 * RANK, targetMask: targetMask(LORA_MODULES), flags: (k.trainA ? 1 : 0) | (k.recompute ? 2 : 0) });
          await agent.client.setLora(initialLora(c, sh.layerStart, sh.layerEnd, RANK, LORA_MODULES, 1));
          stages.push({ serial: `stage ${s}`, client: agent.client });
        }
        for (let step = 1; step <= 2; step++) {
          const micros = Array.from({ length: k.microBatches }, (_, i) => randomBatch(k.microBatchSize, k.seqLen, c.vocabSize, step * 10 + i));
          await runPass(stages, micros, { train: true, lossScale: 1 / (k.microBatches * k.microBatchSize * k.seqLen) });
          await optimizerStep(stages, step, 1e-3, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
        }
        for (const [s, sh] of shapes.entries()) {
          const measured = (await agents[s].client.stats()).peakRssBytes;
          const p = stageMemory(c, sh, {
            loraRank: RANK, microBatchSize: k.microBatchSize, seqLen: k.seqLen, weightFormat: k.format,
            microBatchesInFlight: Math.min(k.stages - s, k.microBatches), recompute: k.recompute, trainA: k.trainA, agentBaseBytes: baseRss[s],
            matmulRowBlock: matmulRowBlockFor(agents[s].client.capabilities.backends),
          });
          const err = (p.totalBytes - measured) / measured;
          worst = Math.max(worst, Math.abs(err));
          const mib = (x: number) => (x / 2 ** 20).toFixed(1);
          rows.push(`${k.shape} ${k.format} B${k.microBatchSize} T${k.seqLen} m${k.microBatches} S${k.stages}${k.recompute ? ' recompute' : ''}${k.trainA ? ' trainA' : ''}${k.opencl ? ' opencl' : ''} stage ${s} ` +
            `[${sh.layerStart},${sh.layerEnd}): predicted ${mib(p.totalBytes)} MiB (w ${mib(p.weightBytes)} lora ${mib(p.loraBytes)} acts ${mib(p.keptActivationBytes)} scratch ${mib(p.scratchBytes)} workspace ${mib(p.workspaceBytes)} overhead ${mib(p.overheadBytes)}) ` +
            `measured ${mib(measured)} MiB, error ${(err * 100).toFixed(1)}%`);
        }
      } finally {
        await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
      }
    }
  } finally {
    process.stdout.write(rows.map((r) => `# ${r}\n`).join(''));
    await rm(dir, { recursive: true, force: true });
  }
  assert.ok(worst < 0.1, `worst relative error ${(worst * 100).toFixed(1)}% >= 10%:\n${rows.join('\n')}`);
});
