// Small random Llama-family models for the ONNX tests: a config plus weights as a WeightMap (no files), and the
// full-sequence graph's logits as the reference other paths are compared with.
import ort from 'onnxruntime-node';
import { layerTensorShapes } from '../../electron/core/model/model-folder.js';
import { parseModelConfig, type ModelConfig } from '../../electron/core/model/hf-config.js';
import { buildModelGraph, MODEL_INPUT, MODEL_OUTPUT } from '../../electron/core/onnx/llama-graph.js';
import type { LlamaGraphOptions, WeightMap } from '../../electron/core/onnx/llama-ops.js';
import { mulberry32 } from '../../electron/core/data/rng.js';

export function randomTensor(n: number, seed: number, scale: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (2 * rng() - 1) * scale);
}

/** A model from config.json keys (model_type llama unless given); norms near 1, everything else random. */
export function randomLlama(raw: Record<string, unknown>, seed = 1): { config: ModelConfig; weights: Map<string, Float32Array> } {
  const config = parseModelConfig({ model_type: 'llama', ...raw }, 'config.json');
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [config.vocabSize, config.hiddenSize]], ['model.norm.weight', [config.hiddenSize]]];
  if (!config.tieWordEmbeddings) shapes.push(['lm_head.weight', [config.vocabSize, config.hiddenSize]]);
  for (let l = 0; l < config.numLayers; l++) shapes.push(...layerTensorShapes(config, l));
  const weights = new Map<string, Float32Array>();
  shapes.forEach(([name, dims], i) => {
    const n = dims.reduce((a, b) => a * b, 1);
    // Scale ~ 1/sqrt(fan-in) keeps activations O(1) through the layers, so logits stay in a sane range.
    const fanIn = dims[dims.length - 1]!;
    weights.set(name, name.includes('norm') ? randomTensor(n, seed * 1000 + i, 0.1).map((v) => 1 + v) : randomTensor(n, seed * 1000 + i, 1.7 / Math.sqrt(fanIn)));
  });
  return { config, weights };
}

/** Logits (B, T, vocab) of the full-sequence graph for `rows` (each of length T), in one session run. */
export async function fullLogits(config: ModelConfig, weights: WeightMap, rows: number[][], opts: LlamaGraphOptions = {}): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(buildModelGraph(config, weights, opts), { logSeverityLevel: 3, intraOpNumThreads: 1 });
  try {
    const T = rows[0]!.length;
    const ids = BigInt64Array.from(rows.flat(), (v) => BigInt(v));
    const out = await session.run({ [MODEL_INPUT]: new ort.Tensor('int64', ids, [rows.length, T]) });
    return out[MODEL_OUTPUT]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
