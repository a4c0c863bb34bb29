// A finished run as the GGUF and merged exports need it: its PEFT adapter checked against the base model's shapes,
// the LoRA scale, and the base model folder (run.json's model.dir, or the --model folder given when it moved).
// Reads only; writes nothing.
import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ModelConfig } from '../model/hf-config.js';
import { openModel, type ModelFolder } from '../model/model-folder.js';
import { PEFT_MODULES, readPeftAdapter, type PeftAdapter, type PeftModule } from './peft.js';

/** One adapted linear layer: W [out, in] gets scale * B @ A, with A [r, in] and B [out, r] (row-major). */
export interface AdaptedModule {
  layer: number;
  module: PeftModule;
  /** HF name of the base weight, e.g. model.layers.3.self_attn.q_proj.weight. */
  weightName: string;
  inDim: number;
  outDim: number;
  a: Float32Array;
  b: Float32Array;
}

export interface RunAdapter {
  adapter: PeftAdapter;
  /** The factor of B @ A: alpha / r, or alpha / sqrt(r) with rsLoRA. */
  scale: number;
  /** Sorted by layer, then PEFT_MODULES order. */
  modules: AdaptedModule[];
}

/** [in, out] of a target module (HF Linear weight is [out, in]). */
export function moduleDims(c: ModelConfig, module: PeftModule): [number, number] {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const dims: Record<PeftModule, [number, number]> = {
    q_proj: [c.hiddenSize, q],
    k_proj: [c.hiddenSize, kv],
    v_proj: [c.hiddenSize, kv],
    o_proj: [q, c.hiddenSize],
    gate_proj: [c.hiddenSize, c.intermediateSize],
    up_proj: [c.hiddenSize, c.intermediateSize],
    down_proj: [c.intermediateSize, c.hiddenSize],
  };
  return dims[module];
}

export function loraScale(alpha: number, rank: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(rank) : alpha / rank;
}

const NAME = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.lora_([AB])$/;

/** Pairs the adapter's A/B tensors per module and checks every shape against the base model's config. */
export function adaptedModules(adapter: PeftAdapter, c: ModelConfig, where: string): AdaptedModule[] {
  const byModule = new Map<string, { layer: number; module: PeftModule; a?: Float32Array; b?: Float32Array; dims: Record<string, number[]> }>();
  for (const { name, tensor } of adapter.tensors) {
    const m = NAME.exec(name);
    if (!m || !(PEFT_MODULES as readonly string[]).includes(m[2]!)) throw new Error(`${where}: "${name}" is not a LoRA tensor of a Llama layer`);
    const layer = Number(m[1]);
    const module = m[2] as PeftModule;
    if (layer >= c.numLayers) throw new Error(`${where}: "${name}" is for layer ${layer}, but the base model has ${c.numLayers} layers`);
    const key = name.slice(0, -'.lora_A'.length);
    const entry = byModule.get(key) ?? { layer, module, dims: {} };
    if (!(tensor.data instanceof Float32Array)) throw new Error(`${where}: "${name}" is not f32`);
    if (m[3] === 'A') entry.a = tensor.data;
    else entry.b = tensor.data;
    entry.dims[m[3]!] = tensor.dims;
    byModule.set(key, entry);
  }
  const r = adapter.rank;
  const out: AdaptedModule[] = [];
  for (const [key, e] of byModule) {
    if (!e.a || !e.b) throw new Error(`${where}: ${key} has lora_${e.a ? 'A' : 'B'} but no lora_${e.a ? 'B' : 'A'}`);
    const [inDim, outDim] = moduleDims(c, e.module);
    const shape = (d: number[] | undefined) => `[${(d ?? []).join(', ')}]`;
    if (shape(e.dims.A) !== shape([r, inDim]) || e.a.length !== r * inDim) {
      throw new Error(`${where}: ${key}.lora_A is ${shape(e.dims.A)}, but rank ${r} and the base model's ${e.module} need [${r}, ${inDim}]`);
    }
    if (shape(e.dims.B) !== shape([outDim, r]) || e.b.length !== outDim * r) {
      throw new Error(`${where}: ${key}.lora_B is ${shape(e.dims.B)}, but rank ${r} and the base model's ${e.module} need [${outDim}, ${r}]`);
    }
    out.push({ layer: e.layer, module: e.module, weightName: `${key}.weight`, inDim, outDim, a: e.a, b: e.b });
  }
  if (out.length === 0) throw new Error(`${where}: the adapter holds no LoRA tensors`);
  return out.sort((x, y) => x.layer - y.layer || PEFT_MODULES.indexOf(x.module) - PEFT_MODULES.indexOf(y.module));
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/**
 * The base model of the run in `runDir`: `modelDir` when given, else run.json's model.dir (relative paths are
 * taken from the current folder, as the CLI recorded them). A missing folder is an error that says how to fix it.
 */
export async function openRunBaseModel(runDir: string, modelDir?: string): Promise<ModelFolder> {
  if (modelDir) return openModel(modelDir);
  const runJsonPath = join(resolve(runDir), 'run.json');
  const text = await readFile(runJsonPath, 'utf8').catch(() => {
    throw new Error(`${runJsonPath} is missing: ${runDir} is not a run folder (or pass the base model with --model DIR)`);
  });
  const recorded = (JSON.parse(text) as { model?: { dir?: unknown } }).model?.dir;
  if (typeof recorded !== 'string' || recorded === '') throw new Error(`${runJsonPath} records no model.dir: pass the base model folder with --model DIR`);
  // A Hugging Face folder has config.json; a GGUF base is the file itself.
  if (!(await exists(recorded.endsWith('.gguf') ? resolve(recorded) : join(resolve(recorded), 'config.json')))) {
    throw new Error(`the run's base model ${resolve(recorded)} (run.json model.dir) is missing or moved: pass its new path with --model PATH`);
  }
  return openModel(recorded);
}

/** The run's adapter (runDir/adapter) with its modules checked against `base`. */
export async function readRunAdapter(runDir: string, base: ModelFolder): Promise<RunAdapter> {
  const dir = join(resolve(runDir), 'adapter');
  if (!(await exists(join(dir, 'adapter_model.safetensors')))) {
    throw new Error(`${runDir} has no finished adapter (${dir}/adapter_model.safetensors): did the run finish?`);
  }
  const adapter = await readPeftAdapter(dir);
  const modules = adaptedModules(adapter, base.config, `${dir} (base ${base.dir})`);
  return { adapter, scale: loraScale(adapter.alpha, adapter.rank, adapter.useRslora), modules };
}
