// The pipeline runtime against real agent processes (no adb): split equals whole (loss and LoRA gradients), the
// golden greedy ids through packer + protocol + generation, and a clear error when an agent dies mid-step.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { needLocalAgent, repoRoot, startLocalAgent, type LocalAgent } from '../support/local-agent.js';
import { openModelFolder, type ModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { loadTokenizer } from '../../electron/core/model/tokenizer.js';
import { readTextDataset } from '../../electron/core/data/text-dataset.js';
import { collateBatch, prepareSamples } from '../../electron/core/data/samples.js';
import { runPass, type StageHandle } from '../../electron/core/train/pipeline.js';
import { generateIds } from '../../electron/core/train/generate.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import type { NamedTensor } from '../../electron/core/protocol/messages.js';

const skip = needLocalAgent();
const RANK = 4;
let dir = '';
let folder: ModelFolder;
const agents: LocalAgent[] = [];

async function stage(layerStart: number, layerEnd: number, lora: NamedTensor[]): Promise<StageHandle> {
  const c = folder.config;
  const file = join(dir, `stage-${layerStart}-${layerEnd}.cfst`);
  await packStage(folder, { layerStart, layerEnd, hasEmbedding: layerStart === 0, hasHead: layerEnd === c.numLayers }, file);
  const agent = await startLocalAgent({ label: `layers ${layerStart}-${layerEnd}` });
  agents.push(agent);
  await agent.client.loadStage({ path: file, loraRank: RANK, loraAlpha: 2 * RANK, targetMask: targetMask(LORA_MODULES), flags: 1 });
  await agent.client.setLora(lora.filter((t) => {
    const layer = Number(/^model\.layers\.(\d+)\./.exec(t.name)![1]);
    return layer >= layerStart && layer < layerEnd;
  }));
  return { serial: `layers ${layerStart}-${layerEnd}`, client: agent.client };
}

/** Non-zero B too, so gradients flow through every LoRA term (the host's initial B is zero). */
function perturbedLora(): NamedTensor[] {
  const lora = initialLora(folder.config, 0, folder.config.numLayers, RANK, LORA_MODULES, 7);
  let k = 0;
  for (const t of lora) if (t.name.endsWith('lora_B')) (t.tensor.data as Float32Array).forEach((_, i, a) => (a[i] = 0.02 * Math.sin(++k)));
  return lora;
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'confidant-pipeline-'));
  folder = await openModelFolder(join(repoRoot(), 'models/stories260K'));
});

after(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('split equals whole: one stage vs two stages give the same loss and LoRA gradients', { skip }, async () => {
  const tok = await loadTokenizer(join(repoRoot(), 'models/stories260K'));
  const ds = await readTextDataset(join(repoRoot(), 'datasets/demo-stories/stories.txt'));
  const data = prepareSamples(ds.documents.slice(0, 20).map((d) => d.text), (t, o) => tok.encode(t, o), { seqLen: 32, validationFraction: 0.1, seed: 3, endTokenId: 2 });
  const micros = [collateBatch(data.train.slice(0, 2)), collateBatch(data.train.slice(2, 4)), collateBatch(data.train.slice(4, 6))];
  const weight = micros.reduce((s, m) => s + m.maskSum, 0);
  const lora = perturbedLora();

  const whole = [await stage(0, 5, lora)];
  const split = [await stage(0, 2, lora), await stage(2, 5, lora)];
  const a = await runPass(whole, micros, { train: true, lossScale: 1 / weight });
  const b = await runPass(split, micros, { train: true, lossScale: 1 / weight });
  assert.ok(b.relayBytes > 0, 'the split pipeline relayed activations through the host');
  const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(Math.abs(x), Math.abs(y), 1e-12);
  assert.ok(rel(a.lossSum, b.lossSum) < 1e-5, `loss whole ${a.lossSum} vs split ${b.lossSum}`);
  assert.equal(a.weightSum, b.weightSum);

  const grads = async (stages: StageHandle[]) => {
    const all = new Map<string, Float32Array>();
    for (const s of stages) for (const t of await s.client.getLora({ includeGrads: true })) if (t.name.endsWith('.grad')) all.set(t.name, t.tensor.data as Float32Array);
    return all;
  };
  const ga = await grads(whole);
  const gb = await grads(split);
  assert.equal(ga.size, 5 * 7 * 2, 'A and B gradients of 7 modules in 5 layers (A trainable)');
  assert.deepEqual([...gb.keys()].sort(), [...ga.keys()].sort());
  let worst = 0;
  for (const [name, x] of ga) {
    const y = gb.get(name)!;
    const scale = Math.max(...x.map(Math.abs), 1e-12);
    assert.ok(scale > 0, `${name} has a zero gradient`);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / scale);
  }
  assert.ok(worst < 1e-5, `largest max-abs-normalised gradient difference ${worst}`);
});

test('whole model through packer, protocol and generation reproduces the golden greedy ids', { skip }, async () => {
  const golden = JSON.parse(await readFile(join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json'), 'utf8')) as { ids: number[] };
  const zeroB = initialLora(folder.config, 0, 5, RANK, LORA_MODULES, 1); // B = 0: the base model exactly
  const stages = [await stage(0, 3, zeroB), await stage(3, 5, zeroB)];
  const ids = await generateIds(stages, [1], { maxNewTokens: golden.ids.length - 1, temperature: 0, seed: 0, stopIds: [], maxPositions: 512 });
  assert.deepEqual([1, ...ids], golden.ids);
});

test('an agent that dies mid-step gives a clear error naming it, and no hang', { skip }, async () => {
  const lora = perturbedLora();
  const stages = [await stage(0, 2, lora), await stage(2, 5, lora)];
  const victim = agents[agents.length - 1];
  const T = 256;
  const big = collateBatch(Array.from({ length: 8 }, () => ({ tokens: new Int32Array(T).fill(5), targets: new Int32Array(T).fill(6), mask: new Float32Array(T).fill(1), docIndex: 0, chunkIndex: 0 })));
  const started = Date.now();
  const pass = runPass(stages, [big, big, big, big], { train: true, lossScale: 1e-4 });
  setTimeout(() => victim.process.kill('SIGKILL'), 30);
  await assert.rejects(pass, (e: Error) => {
    assert.match(e.message, /layers 2-5/);
    assert.match(e.message, /closed the connection|connection/);
    return true;
  });
  assert.ok(Date.now() - started < 10_000, 'failed fast');
});
