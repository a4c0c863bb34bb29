// Fixtures for the export tests: a hand-made run folder (run.json + adapter/ written by the real PEFT writer) with a
// seeded random LoRA large enough to change the model's predictions, an F16 copy of a model folder, and the ONNX
// engine's logits of a model (optionally with a LoRA applied in the graph, not merged) as the reference.
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportPeft, PEFT_MODULES, type LoraTensor } from '../../electron/core/export/peft.js';
import { moduleDims } from '../../electron/core/export/run-adapter.js';
import { MODEL_SIDE_FILES } from '../../electron/core/export/merged.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { openModelFolder, readModelTensorF32, tensorLocation, type ModelFolder } from '../../electron/core/model/model-folder.js';
import { encodeFloats, writeSafetensorsStream } from '../../electron/core/model/safetensors-write.js';
import { buildModelGraph, MODEL_INPUT, MODEL_OUTPUT, readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { OrtRunner } from '../../electron/core/onnx/ort-runner.js';
import { mulberry32 } from '../../electron/core/data/rng.js';

/** Uniform random A [r, in] and B [out, r] in [-amp, amp) for every target module of every layer, protocol names. */
export function randomLora(c: ModelConfig, rank: number, amp: number, seed: number, modules: readonly string[] = PEFT_MODULES): Map<string, LoraTensor> {
  const next = mulberry32(seed); // seeded, so a failing test sees the same adapter again
  const fill = (n: number) => Float32Array.from({ length: n }, () => (2 * next() - 1) * amp);
  const out = new Map<string, LoraTensor>();
  for (let i = 0; i < c.numLayers; i++) {
    for (const m of modules) {
      const [inDim, outDim] = moduleDims(c, m as (typeof PEFT_MODULES)[number]);
      const path = `model.layers.${i}.${['gate_proj', 'up_proj', 'down_proj'].includes(m) ? 'mlp' : 'self_attn'}.${m}`;
      out.set(`${path}.lora_A`, { dims: [rank, inDim], data: fill(rank * inDim) });
      out.set(`${path}.lora_B`, { dims: [outDim, rank], data: fill(outDim * rank) });
    }
  }
  return out;
}

export interface FakeRun {
  runDir: string;
  lora: Map<string, LoraTensor>;
  rank: number;
  alpha: number;
  useRslora: boolean;
}

/** runs/<id>/ as train/job.ts leaves it, as far as export reads it: run.json (model.dir) and adapter/ (PEFT). */
export async function makeRunFolder(
  runDir: string,
  modelDir: string,
  o: { rank?: number; alpha?: number; amp?: number; seed?: number; useRslora?: boolean; modules?: readonly string[] } = {},
): Promise<FakeRun> {
  const folder = await openModelFolder(modelDir);
  const rank = o.rank ?? 4;
  const alpha = o.alpha ?? 2 * rank;
  const modules = o.modules ?? PEFT_MODULES;
  const lora = randomLora(folder.config, rank, o.amp ?? 0.5, o.seed ?? 1, modules);
  await mkdir(runDir, { recursive: true });
  await writeFile(join(runDir, 'run.json'), JSON.stringify({ model: { dir: modelDir, type: folder.config.modelType, layers: folder.config.numLayers } }, null, 2));
  await exportPeft(lora, { baseModel: modelDir, rank, alpha, targetModules: [...modules], useRslora: o.useRslora }, join(runDir, 'adapter'));
  return { runDir, lora, rank, alpha, useRslora: o.useRslora ?? false };
}

/** A copy of `src` with every floating-point tensor stored as F16 (the same single-file layout). */
export async function f16CopyOfModel(src: ModelFolder, dst: string): Promise<void> {
  await mkdir(dst, { recursive: true });
  const names = [...src.tensors.keys()];
  await writeSafetensorsStream(join(dst, 'model.safetensors'), names.map((name) => ({
    name, dtype: 'F16', shape: tensorLocation(src, name).info.shape,
    async *bytes() { yield encodeFloats(await readModelTensorF32(src, name), 'F16'); },
  })), { format: 'pt' });
  for (const f of MODEL_SIDE_FILES) await copyFile(join(src.dir, f), join(dst, f)).catch(() => undefined);
}

/** Logits [T, V] from onnxruntime for `ids`; with `lora`, the adapter is applied inside the graph at `scale`. */
export async function onnxLogits(folder: ModelFolder, ids: number[], lora?: { tensors: Map<string, LoraTensor>; scale: number }): Promise<Float32Array> {
  const weights = await readLlamaWeights(folder, { whole: true });
  if (lora) for (const [name, t] of lora.tensors) weights.set(name, t.data);
  const graph = buildModelGraph(folder.config, weights, lora ? { loraScale: lora.scale } : {});
  const ort = await OrtRunner.create(graph, { intraOpNumThreads: 1 });
  try {
    const r = await ort.run({ [MODEL_INPUT]: { type: 'int64', dims: [1, ids.length], data: BigInt64Array.from(ids.map(BigInt)) } });
    return r.outputs[MODEL_OUTPUT]!.data as Float32Array;
  } finally {
    await ort.close();
  }
}
