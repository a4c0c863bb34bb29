// Every supported model family (tiny random models in each family's exact Hugging Face layout, written by
// test/fixtures/families/make-families.ts) through the packer and the real agent, against the ONNX graph of the
// same weights under onnxruntime (an independent implementation of transformers' Llama math): forward logits
// agree. stories260K (real weights) is also held to its golden greedy ids. Mistral's sliding window is refused by
// the agent beyond its length.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModel, type ModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { buildModelGraph, MODEL_INPUT, MODEL_OUTPUT, readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { OrtRunner } from '../../electron/core/onnx/ort-runner.js';
import { FORWARD_FLAG_RETURN_LOGITS, FORWARD_OUTPUT_LOSS } from '../../electron/core/protocol/messages.js';
import { needLocalAgent, repoRoot, startLocalAgent, type LocalAgent } from '../support/local-agent.js';
import { FAMILIES, makeFamily } from '../fixtures/families/make-families.js';
import { relMaxDiff } from '../support/compare.js';

const skip = needLocalAgent();
const T = 40;
let dir = '';
let agent: LocalAgent | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'confidant-families-'));
});
after(async () => {
  await agent?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function theAgent(): Promise<LocalAgent> {
  agent ??= await startLocalAgent({ label: 'families' });
  return agent;
}

/** Logits (T, vocab) of the whole model as one stage on the agent. */
async function agentLogits(folder: ModelFolder, ids: number[], name: string): Promise<Float32Array> {
  const c = folder.config;
  const path = join(dir, `${name}.cfst`);
  await packStage(folder, { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: true }, path);
  const a = await theAgent();
  await a.client.loadStage({ path, loraRank: 0, loraAlpha: 0, targetMask: 0, flags: 0 });
  const n = ids.length - 1;
  const r = await a.client.forward({
    microId: 1,
    flags: FORWARD_FLAG_RETURN_LOGITS,
    input: { dtype: 'i32', dims: [1, n], data: Int32Array.from(ids.slice(0, n)) },
    targets: { dtype: 'i32', dims: [1, n], data: Int32Array.from(ids.slice(1)) },
    mask: { dtype: 'f32', dims: [1, n], data: new Float32Array(n).fill(1) },
  });
  if (r.outputKind !== FORWARD_OUTPUT_LOSS || !r.logits) throw new Error(`${name}: the agent returned no logits`);
  return r.logits.data as Float32Array;
}

async function ortLogits(folder: ModelFolder, ids: number[], config = folder.config): Promise<Float32Array> {
  const weights = await readLlamaWeights(folder, { whole: true });
  const ort = await OrtRunner.create(buildModelGraph(config, weights), { intraOpNumThreads: 1 });
  try {
    const n = ids.length - 1;
    const { outputs } = await ort.run({ [MODEL_INPUT]: { type: 'int64', dims: [1, n], data: BigInt64Array.from(ids.slice(0, n).map(BigInt)) } });
    return outputs[MODEL_OUTPUT]!.data as Float32Array;
  } finally {
    await ort.close();
  }
}

function seededIds(n: number, vocab: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => (s = (s * 1103515245 + 12345) % 2147483648) % vocab);
}

for (const family of FAMILIES) {
  test(`${family.name}: agent logits equal onnxruntime's`, { skip }, async () => {
    const folderDir = await makeFamily(dir, family, join(repoRoot(), 'models/stories260K'));
    const folder = await openModel(folderDir);
    const c = folder.config;
    assert.equal(c.modelType, family.config.model_type);
    const ids = seededIds(T + 1, c.vocabSize, 7);
    const got = await agentLogits(folder, ids, family.name);
    const want = await ortLogits(folder, ids);
    const d = relMaxDiff(got, want);
    assert.ok(d < 1e-4, `${family.name}: max |agent - ORT| / max |ORT| = ${d}`);
    if (c.ropeScaling !== null) {
      // The scaled frequencies reach both sides: without them the reference moves away from the agent.
      const plain = await ortLogits(folder, ids, { ...c, ropeScaling: null });
      assert.ok(relMaxDiff(got, plain) > 1e-3, `${family.name}: rope_scaling changed nothing`);
    }
  });
}

test('qwen2 family: biases and tied embeddings are what the agent runs', { skip }, async () => {
  const folder = await openModel(join(dir, 'qwen2'));
  assert.equal(folder.config.attentionBias, true);
  assert.equal(folder.config.tieWordEmbeddings, true);
  // use_sliding_window false: the window in its config does not apply.
  assert.equal(folder.config.slidingWindow, null);
});

test('a sequence longer than the sliding window is refused by the agent, naming the window', { skip }, async () => {
  const family = FAMILIES.find((f) => f.name === 'mistral')!;
  const folder = await openModel(await makeFamily(join(dir, 'window'), { ...family, config: { ...family.config, sliding_window: 16 } }, join(repoRoot(), 'models/stories260K')));
  assert.equal(folder.config.slidingWindow, 16);
  const ids = seededIds(T + 1, folder.config.vocabSize, 3);
  await assert.rejects(agentLogits(folder, ids, 'window'), /sequence length 40 exceeds the model's sliding_window 16/);
  const inside = ids.slice(0, 17);
  const d = relMaxDiff(await agentLogits(folder, inside, 'window'), await ortLogits(folder, inside));
  assert.ok(d < 1e-4, `inside the window: ${d}`);
});

test('stories260K: agent and onnxruntime reproduce the golden greedy ids (teacher-forced) and agree', { skip }, async () => {
  const golden = JSON.parse(await readFile(join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json'), 'utf8')) as { ids: number[] };
  const folder = await openModel(join(repoRoot(), 'models/stories260K'));
  const V = folder.config.vocabSize;
  const ids = golden.ids.slice(0, 65);
  const got = await agentLogits(folder, ids, 'stories260K');
  const want = await ortLogits(folder, ids);
  assert.ok(relMaxDiff(got, want) < 1e-4);
  for (const [who, logits] of [['agent', got], ['onnxruntime', want]] as const) {
    for (let t = 0; t < ids.length - 1; t++) {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[t * V + v]! > logits[t * V + best]!) best = v;
      assert.equal(best, ids[t + 1], `${who}: greedy token at position ${t}`);
    }
  }
});

test('stories260K as GGUF packs into a stage the agent runs like the HF folder\'s', { skip }, async () => {
  const ggufPath = join(repoRoot(), '../shared/models/stories260K-gguf/stories260K-f32.gguf');
  if (!existsSync(ggufPath)) return; // model-gguf-read.test.ts covers the reader without ../shared
  const ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376];
  const fromGguf = await agentLogits(await openModel(ggufPath), ids, 'stories260K-gguf');
  const fromHf = await agentLogits(await openModel(join(repoRoot(), 'models/stories260K')), ids, 'stories260K-hf');
  assert.ok(relMaxDiff(fromGguf, fromHf) < 1e-6);
});
