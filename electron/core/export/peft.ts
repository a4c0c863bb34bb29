// Exports trained LoRA tensors as a Hugging Face PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
// Plain LoRA only (LoRA-FA exports as LoRA with its frozen A); GGUF (gguf-lora.ts) and merging (merged.ts) read it back.
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type F32Tensor } from '../model/safetensors.js';
import type { NamedTensor } from '../protocol/messages.js';
import { writeFolderAtomically } from './atomic-output.js';

export const PEFT_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type PeftModule = (typeof PEFT_MODULES)[number];

export interface LoraTensor {
  dims: number[];
  data: Float32Array;
}

/** The protocol's tensor-list form (GET_LORA reply): accepted as well as a Map; data must be f32. */
export interface NamedLoraTensor {
  name: string;
  tensor: { dims: number[]; data: ArrayBufferView };
}

export type LoraTensors = Map<string, LoraTensor> | ReadonlyArray<NamedLoraTensor>;

/** Normalises either input form to a Map, refusing duplicates and non-f32 data. */
export function loraTensorMap(input: LoraTensors): Map<string, LoraTensor> {
  if (input instanceof Map) return input;
  const out = new Map<string, LoraTensor>();
  for (const { name, tensor } of input) {
    if (out.has(name)) throw new Error(`LoRA tensor "${name}" appears twice`);
    if (!(tensor.data instanceof Float32Array)) throw new Error(`LoRA tensor "${name}" must be f32 to export`);
    out.set(name, { dims: [...tensor.dims], data: tensor.data });
  }
  return out;
}

export interface PeftExportOptions {
  /** Hugging Face id or path of the base model (adapter_config.json base_model_name_or_path). */
  baseModel: string;
  rank: number;
  alpha: number;
  targetModules: readonly string[];
  /** rsLoRA scaling alpha / sqrt(r) instead of alpha / r. Default false. */
  useRslora?: boolean;
  /** Replace an existing non-empty outDir. Default false: refuse. */
  overwrite?: boolean;
}

export interface PeftExportResult {
  outDir: string;
  files: string[];
  tensorCount: number;
  adapterBytes: number;
}

// docs/protocol.md names: model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B} and model.layers.{i}.mlp.{gate,up,down}_proj.lora_{A,B}
const PROTOCOL_NAME = /^model\.layers\.(\d+)\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))\.lora_(A|B)$/;

/** PEFT key of a protocol LoRA tensor name: `base_model.model.<name>.weight`. */
export function peftKeyName(protocolName: string): string {
  if (!PROTOCOL_NAME.test(protocolName)) throw new Error(`"${protocolName}" is not a LoRA tensor name (expected e.g. model.layers.3.self_attn.q_proj.lora_A)`);
  return `base_model.model.${protocolName}.weight`;
}

function sortKey(name: string): [number, number, number] {
  const m = PROTOCOL_NAME.exec(name)!;
  const module = (m[3] ?? m[4]) as PeftModule;
  return [Number(m[1]), PEFT_MODULES.indexOf(module), m[5] === 'A' ? 0 : 1];
}

/** Checks names, pairing, ranks and shapes; returns the tensors keyed by PEFT name in protocol order. */
export function toPeftTensors(lora: Map<string, LoraTensor>, opts: PeftExportOptions): [string, F32Tensor][] {
  const r = opts.rank;
  if (!Number.isInteger(r) || r < 1) throw new Error(`LoRA rank must be a positive integer, got ${r}`);
  for (const m of opts.targetModules) {
    if (!(PEFT_MODULES as readonly string[]).includes(m)) throw new Error(`target module "${m}" is not one of ${PEFT_MODULES.join(', ')}`);
  }
  // GET_LORA with gradients adds `<name>.grad`; gradients are not part of an adapter.
  const names = [...lora.keys()].filter((n) => !n.endsWith('.grad'));
  if (names.length === 0) throw new Error('no LoRA tensors to export');
  for (const name of names) {
    const m = PROTOCOL_NAME.exec(name);
    if (!m) throw new Error(`"${name}" is not a LoRA tensor name (expected e.g. model.layers.3.self_attn.q_proj.lora_A)`);
    const module = m[3] ?? m[4]!;
    if (!opts.targetModules.includes(module)) {
      throw new Error(`tensor "${name}" is for ${module}, which is not in targetModules [${opts.targetModules.join(', ')}]`);
    }
    const t = lora.get(name)!;
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (t.dims.length !== 2 || count !== t.data.length) {
      throw new Error(`tensor "${name}": dims [${t.dims.join(', ')}] must be 2-D and match its ${t.data.length} values`);
    }
    const isA = m[5] === 'A';
    const other = name.slice(0, -1) + (isA ? 'B' : 'A');
    if (!lora.has(other)) throw new Error(`tensor "${name}" has no partner "${other}"`);
    if (isA && t.dims[0] !== r) throw new Error(`tensor "${name}" is [${t.dims.join(', ')}]; lora_A must be [r=${r}, in]`);
    if (!isA && t.dims[1] !== r) throw new Error(`tensor "${name}" is [${t.dims.join(', ')}]; lora_B must be [out, r=${r}]`);
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!)) throw new Error(`tensor "${name}" holds a non-finite value at index ${i}: training diverged, not exporting`);
    }
  }
  names.sort((a, b) => {
    const ka = sortKey(a);
    const kb = sortKey(b);
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2];
  });
  return names.map((n) => [peftKeyName(n), { dims: [...lora.get(n)!.dims], data: lora.get(n)!.data }]);
}

/** adapter_config.json contents (the fields PEFT's LoraConfig reads; shared/docs/REFERENCE.md "LoRA export formats"). */
export function peftAdapterConfig(opts: PeftExportOptions): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModel,
    r: opts.rank,
    lora_alpha: opts.alpha,
    target_modules: [...opts.targetModules],
    lora_dropout: 0.0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: opts.useRslora ?? false,
    use_dora: false,
    modules_to_save: null,
    init_lora_weights: true,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    inference_mode: true,
    revision: null,
  };
}

/**
 * Writes `outDir`/adapter_config.json and `outDir`/adapter_model.safetensors. The folder is assembled under a
 * temporary sibling name and renamed into place, so `outDir` never holds a half-written adapter.
 */
export async function exportPeft(lora: LoraTensors, opts: PeftExportOptions, outDirIn: string): Promise<PeftExportResult> {
  const tensors = toPeftTensors(loraTensorMap(lora), opts);
  const outDir = resolve(outDirIn);
  const bytes = await writeFolderAtomically(outDir, opts.overwrite ?? false, async (tempDir) => {
    const written = await writeSafetensors(join(tempDir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    await writeFile(join(tempDir, 'adapter_config.json'), JSON.stringify(peftAdapterConfig(opts), null, 2) + '\n', { flush: true });
    return written.bytes;
  });
  return { outDir, files: ['adapter_config.json', 'adapter_model.safetensors'], tensorCount: tensors.length, adapterBytes: bytes };
}

export interface PeftAdapter {
  rank: number;
  alpha: number;
  /** adapter_config.json use_rslora: scale alpha / sqrt(r) instead of alpha / r. */
  useRslora: boolean;
  targetModules: string[];
  tensors: NamedTensor[];
}

/** Reads a PEFT adapter folder back: LoRA tensors under protocol names, with rank and alpha from its config. */
export async function readPeftAdapter(dir: string): Promise<PeftAdapter> {
  const configPath = join(dir, 'adapter_config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8').catch(() => {
    throw new Error(`${configPath} is missing: ${dir} is not a PEFT adapter folder`);
  })) as { r?: unknown; lora_alpha?: unknown; target_modules?: unknown; use_rslora?: unknown };
  if (typeof config.r !== 'number' || typeof config.lora_alpha !== 'number' || !Array.isArray(config.target_modules)) {
    throw new Error(`${configPath} lacks r, lora_alpha or target_modules`);
  }
  const header = await readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
  const tensors: NamedTensor[] = [];
  for (const [key, info] of header.tensors) {
    const name = key.replace(/^base_model\.model\./, '').replace(/\.weight$/, '');
    if (!PROTOCOL_NAME.test(name)) throw new Error(`${header.path}: "${key}" is not a PEFT LoRA key of a Llama layer`);
    tensors.push({ name, tensor: { dtype: 'f32', dims: [...info.shape], data: await readTensorF32(header, key) } });
  }
  return { rank: config.r, alpha: config.lora_alpha, useRslora: config.use_rslora === true, targetModules: config.target_modules as string[], tensors };
}
