// Writes a random-weight Hugging Face Llama folder for benchmarks: matrices N(0, 0.02) (the Llama initializer
// range), norms 1, a made-up vocabulary. Deterministic for a seed. Not a trained model: timings only.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseModelConfig, type ModelConfig } from '../../electron/core/model/hf-config.js';
import { layerTensorShapes } from '../../electron/core/model/model-folder.js';
import { writeSafetensors, type F32Tensor } from '../../electron/core/model/safetensors.js';
import { minimalSpmVocab } from '../../electron/core/model/gguf-vocab.js';
import { deriveSeed, mulberry32 } from '../../electron/core/data/rng.js';
import { hfConfigJson, type BenchShape } from './bench-shapes.js';

export const INIT_STD = 0.02;

/** n samples of N(0, std^2) by Box-Muller over mulberry32. */
export function gaussian(n: number, seed: number, std = 1): Float32Array {
  const rng = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rng(); // (0, 1]: log(0) never happens
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const phi = 2 * Math.PI * rng();
    out[i] = r * Math.cos(phi);
    if (i + 1 < n) out[i + 1] = r * Math.sin(phi);
  }
  return out;
}

/** Every tensor name and shape of the model, in checkpoint order. */
function tensorShapes(c: ModelConfig): [string, number[]][] {
  const out: [string, number[]][] = [['model.embed_tokens.weight', [c.vocabSize, c.hiddenSize]]];
  for (let i = 0; i < c.numLayers; i++) out.push(...layerTensorShapes(c, i));
  out.push(['model.norm.weight', [c.hiddenSize]]);
  if (!c.tieWordEmbeddings) out.push(['lm_head.weight', [c.vocabSize, c.hiddenSize]]);
  return out;
}

/**
 * Writes config.json, tokenizer.json (a WordLevel vocabulary matching minimalSpmVocab, so the folder opens; the
 * benchmarks feed token ids) and model.safetensors under `dir`. Returns the parsed config.
 */
export async function writeRandomLlama(dir: string, shape: BenchShape, seed: number): Promise<ModelConfig> {
  await mkdir(dir, { recursive: true });
  const raw = hfConfigJson(shape);
  await writeFile(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
  const c = parseModelConfig(raw, join(dir, 'config.json'));
  const vocab = minimalSpmVocab(c.vocabSize);
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0',
    model: { type: 'WordLevel', vocab: Object.fromEntries(vocab.tokens.map((t, i) => [t, i])), unk_token: '<unk>' },
  }));
  const tensors: [string, F32Tensor][] = tensorShapes(c).map(([name, dims], i) => {
    const count = dims.reduce((a, b) => a * b, 1);
    const data = dims.length === 1 ? new Float32Array(count).fill(1) : gaussian(count, deriveSeed(seed, i), INIT_STD);
    return [name, { dims, data }];
  });
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return c;
}
