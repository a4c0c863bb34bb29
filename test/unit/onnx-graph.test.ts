// Checks the ONNX Llama graphs against independent references: the whole-model graph of stories260K, run by
// onnxruntime, reproduces llama2.c's golden greedy ids; the one-layer graph (with and without LoRA) matches the
// native agent's FORWARD of the same layer. Not a speed test (npm run bench).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { layerTensorShapes, openModelFolder } from '../../electron/core/model/model-folder.js';
import { parseModelConfig } from '../../electron/core/model/hf-config.js';
import { writeSafetensors } from '../../electron/core/model/safetensors.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { buildLayerGraph, buildModelGraph, LAYER_INPUT, LAYER_OUTPUT, MODEL_INPUT, MODEL_OUTPUT, readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { OrtRunner } from '../../electron/core/onnx/ort-runner.js';
import { FORWARD_OUTPUT_HIDDEN, TARGET_MODULE_BITS } from '../../electron/core/protocol/messages.js';
import { mulberry32 } from '../../electron/core/data/rng.js';
import { needLocalAgent, repoRoot, startLocalAgent } from '../support/local-agent.js';

const MODEL_DIR = join(repoRoot(), 'models', 'stories260K');
const GOLDEN = join(repoRoot(), 'test/fixtures/golden/stories260K-greedy-200.json');

function argmaxLastRow(logits: Float32Array, T: number, V: number): number {
  let best = 0;
  const base = (T - 1) * V;
  for (let v = 1; v < V; v++) if (logits[base + v]! > logits[base + best]!) best = v;
  return best;
}

test('whole-model ONNX graph of stories260K reproduces the golden greedy ids', async () => {
  const golden = JSON.parse(await readFile(GOLDEN, 'utf8')) as { ids: number[] };
  const folder = await openModelFolder(MODEL_DIR);
  const c = folder.config;
  const model = buildModelGraph(c, await readLlamaWeights(folder, { whole: true }));
  const ort = await OrtRunner.create(model, { intraOpNumThreads: 1 });
  try {
    assert.deepEqual(ort.inputNames, [MODEL_INPUT]);
    assert.deepEqual(ort.outputNames, [MODEL_OUTPUT]);
    // No KV cache: every step re-runs the whole prefix (200 positions of a 260K model is cheap).
    const ids = [golden.ids[0]!];
    while (ids.length < golden.ids.length) {
      const { outputs } = await ort.run({ [MODEL_INPUT]: { type: 'int64', dims: [1, ids.length], data: BigInt64Array.from(ids.map(BigInt)) } });
      const logits = outputs[MODEL_OUTPUT]!;
      assert.deepEqual(logits.dims, [1, ids.length, c.vocabSize]);
      ids.push(argmaxLastRow(logits.data as Float32Array, ids.length, c.vocabSize));
    }
    const firstDiff = ids.findIndex((id, i) => id !== golden.ids[i]);
    assert.equal(firstDiff, -1, `first difference at position ${firstDiff}: ${ids[firstDiff]} vs golden ${golden.ids[firstDiff]}`);
  } finally {
    await ort.close();
  }
});

function randomTensor(n: number, seed: number, scale: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (2 * rng() - 1) * scale);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const skipAgent = needLocalAgent();

test('one-layer ONNX graph equals the agent FORWARD of a middle stage, with and without LoRA', { skip: skipAgent }, async () => {
  const folder = await openModelFolder(MODEL_DIR);
  const c = folder.config;
  const layer = 2;
  const dir = await mkdtemp(join(tmpdir(), 'cfd-onnx-'));
  const agent = await startLocalAgent();
  try {
    const stage = join(dir, 'stage.bin');
    await packStage(folder, { layerStart: layer, layerEnd: layer + 1, hasEmbedding: false, hasHead: false }, stage);
    const rank = 4;
    const alpha = 8;
    const mask = TARGET_MODULE_BITS.q_proj | TARGET_MODULE_BITS.v_proj | TARGET_MODULE_BITS.down_proj;
    await agent.client.loadStage({ path: stage, loraRank: rank, loraAlpha: alpha, targetMask: mask, flags: 0 });
    const B = 2;
    const T = 7;
    const input = randomTensor(B * T * c.hiddenSize, 11, 1);
    const weights = await readLlamaWeights(folder, { layers: [layer] });

    const agentForward = async () => {
      const r = await agent.client.forward({ microId: 1, flags: 0, input: { dtype: 'f32', dims: [B, T, c.hiddenSize], data: input } });
      assert.equal(r.outputKind, FORWARD_OUTPUT_HIDDEN);
      return (r as { hidden: { data: Float32Array } }).hidden.data;
    };
    const ortForward = async (w: Map<string, Float32Array>, loraScale?: number) => {
      const ort = await OrtRunner.create(buildLayerGraph(c, layer, w, { loraScale }), { intraOpNumThreads: 1 });
      try {
        const { outputs } = await ort.run({ [LAYER_INPUT]: { type: 'float32', dims: [B, T, c.hiddenSize], data: input } });
        assert.deepEqual(outputs[LAYER_OUTPUT]!.dims, [B, T, c.hiddenSize]);
        return outputs[LAYER_OUTPUT]!.data as Float32Array;
      } finally {
        await ort.close();
      }
    };

    // The agent's adapters start at zero: the plain layer.
    const plain = maxAbsDiff(await agentForward(), await ortForward(weights));
    assert.ok(plain < 1e-4, `plain layer: max |agent - ORT| = ${plain}`);

    // Non-zero A and B on q, v and down (B non-zero so the adapter changes the output).
    const dims: Record<string, [number, number]> = { 'self_attn.q_proj': [c.hiddenSize, c.numHeads * c.headDim], 'self_attn.v_proj': [c.hiddenSize, c.numKvHeads * c.headDim], 'mlp.down_proj': [c.intermediateSize, c.hiddenSize] };
    const tensors = [];
    const withLora = new Map(weights);
    let seed = 100;
    for (const [m, [inDim, outDim]] of Object.entries(dims)) {
      const path = `model.layers.${layer}.${m}`;
      const a = randomTensor(rank * inDim, seed++, 0.2);
      const b = randomTensor(outDim * rank, seed++, 0.2);
      tensors.push({ name: `${path}.lora_A`, tensor: { dtype: 'f32' as const, dims: [rank, inDim], data: a } });
      tensors.push({ name: `${path}.lora_B`, tensor: { dtype: 'f32' as const, dims: [outDim, rank], data: b } });
      withLora.set(`${path}.lora_A`, a);
      withLora.set(`${path}.lora_B`, b);
    }
    await agent.client.setLora(tensors);
    const ours = await agentForward();
    const lora = maxAbsDiff(ours, await ortForward(withLora, alpha / rank));
    assert.ok(lora < 1e-4, `LoRA layer: max |agent - ORT| = ${lora}`);
    // And the adapter mattered: without it ORT is far from the agent.
    assert.ok(maxAbsDiff(ours, await ortForward(weights)) > 1e-2, 'the LoRA adapters changed nothing: the check above would not see a wrong scale');
  } finally {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('one-layer graph with q/k/v biases, head_dim != hidden/heads and rope_theta 5e5 equals the agent', { skip: skipAgent }, async () => {
  // A made-up shape that exercises what stories260K does not: biases (Qwen2-style), a wider attention than the
  // residual (4 heads x 32 > hidden 64), GQA 4/2 and a non-default RoPE base.
  const raw = {
    model_type: 'llama', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 1, num_attention_heads: 4,
    num_key_value_heads: 2, head_dim: 32, vocab_size: 300, rope_theta: 500000, rms_norm_eps: 1e-6,
    attention_bias: true, tie_word_embeddings: true,
  };
  const dir = await mkdtemp(join(tmpdir(), 'cfd-onnx-bias-'));
  const agent = await startLocalAgent();
  try {
    const modelDir = join(dir, 'model');
    await mkdir(modelDir);
    await writeFile(join(modelDir, 'config.json'), JSON.stringify(raw));
    await writeFile(join(modelDir, 'tokenizer.json'), '{}'); // opened for its presence only
    const c = parseModelConfig(raw, 'config.json');
    const shapes: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]], ...layerTensorShapes(c, 0), ['model.norm.weight', [c.hiddenSize]]];
    await writeSafetensors(join(modelDir, 'model.safetensors'), shapes.map(([name, dims], i) => {
      const n = dims.reduce((a, b) => a * b, 1);
      // Norm weights near 1, everything else (biases included) random.
      const data = name.includes('norm') ? randomTensor(n, 500 + i, 0.1).map((v) => 1 + v) : randomTensor(n, 500 + i, 0.3);
      return [name, { dims, data }] as const;
    }));
    const folder = await openModelFolder(modelDir);
    const stage = join(dir, 'stage.bin');
    await packStage(folder, { layerStart: 0, layerEnd: 1, hasEmbedding: false, hasHead: false }, stage);
    await agent.client.loadStage({ path: stage, loraRank: 0, loraAlpha: 0, targetMask: 0, flags: 0 });
    const B = 1;
    const T = 9;
    const input = randomTensor(B * T * c.hiddenSize, 21, 1);
    const r = await agent.client.forward({ microId: 1, flags: 0, input: { dtype: 'f32', dims: [B, T, c.hiddenSize], data: input } });
    assert.equal(r.outputKind, FORWARD_OUTPUT_HIDDEN);
    const ours = (r as { hidden: { data: Float32Array } }).hidden.data;
    const ort = await OrtRunner.create(buildLayerGraph(c, 0, await readLlamaWeights(folder, { layers: [0] })), { intraOpNumThreads: 1 });
    try {
      const { outputs } = await ort.run({ [LAYER_INPUT]: { type: 'float32', dims: [B, T, c.hiddenSize], data: input } });
      const diff = maxAbsDiff(ours, outputs[LAYER_OUTPUT]!.data as Float32Array);
      assert.ok(diff < 1e-4, `max |agent - ORT| = ${diff}`);
    } finally {
      await ort.close();
    }
  } finally {
    await agent.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
