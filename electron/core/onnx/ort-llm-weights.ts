// The weights an ONNX Llama graph is built from: a model folder's tensors as f32, plus, when asked, a PEFT adapter
// folder's LoRA tensors under the names llama-ops.ts linear() looks for (<module>.lora_A / .lora_B) and its scale.
import type { ModelConfig } from '../model/hf-config.js';
import { openModel } from '../model/model-folder.js';
import { readPeftAdapter } from '../export/peft.js';
import { readLlamaWeights } from './llama-graph.js';

export interface LlmWeights {
  config: ModelConfig;
  weights: Map<string, Float32Array>;
  /** Set when an adapter was added: alpha / r (alpha / sqrt(r) with rsLoRA), as PEFT applies it. */
  loraScale?: number;
}

/** The base model of `modelDir`, with the PEFT adapter of `adapterDir` when given. */
export async function loadLlmWeights(modelDir: string, adapterDir?: string): Promise<LlmWeights> {
  const folder = await openModel(modelDir); // a Hugging Face folder or a GGUF file
  const weights = await readLlamaWeights(folder, { whole: true });
  return { config: folder.config, weights, loraScale: adapterDir ? await addPeftAdapter(weights, adapterDir) : undefined };
}

/** Adds the adapter's LoRA tensors to `weights` and returns the scale to build the graph with. */
export async function addPeftAdapter(weights: Map<string, Float32Array>, adapterDir: string): Promise<number> {
  const adapter = await readPeftAdapter(adapterDir);
  for (const { name, tensor } of adapter.tensors) {
    if (!(tensor.data instanceof Float32Array)) throw new Error(`${adapterDir}: LoRA tensor ${name} is not f32`);
    weights.set(name, tensor.data);
  }
  return adapter.alpha / (adapter.useRslora ? Math.sqrt(adapter.rank) : adapter.rank);
}
