// Opens a model for the rest of the code through one shape, ModelFolder: a Hugging Face folder (config, tokenizer
// file presence, an index of every tensor across one model.safetensors or the shards of
// model.safetensors.index.json) or a GGUF file (gguf-model.ts presents its tensors under HF names and layout).
// Reads headers only; tensors are read one at a time, by HF name, through readModelTensorF32 / readModelTensorBytes.
import { access, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { HF_FOLDER_NEEDS, readModelConfig, type ModelConfig } from './hf-config.js';
import { bytesToF32, readSafetensorsHeader, readTensorBytes, readTensorF32, type SafetensorsHeader, type TensorInfo } from './safetensors.js';
import { ggufHeaderView, ggufTensorInfo, isGgufPath, openGguf, readGgufTensorBytes, type OpenedGguf } from './gguf-model.js';

export interface TensorLocation {
  /** Hugging Face name (the key in ModelFolder.tensors). */
  name: string;
  /** The file holding it. For a GGUF model a view of the GGUF file: path and sizes only (read through the model). */
  header: SafetensorsHeader;
  /** Shape, dtype and nbytes as readModelTensorBytes returns the tensor; info.name is the name inside the file. */
  info: TensorInfo;
}

export interface ModelFolder {
  /** 'hf': a Hugging Face folder of safetensors; 'gguf': one GGUF file (llama.cpp). */
  source: 'hf' | 'gguf';
  /** The folder, or the .gguf file: what openModel(dir) opens again (pack workers reopen models by it). */
  dir: string;
  config: ModelConfig;
  /** null for a GGUF file without a tokenizer.json beside it (the tokenizer is built from its metadata). */
  tokenizerJsonPath: string | null;
  /** null when the folder has no tokenizer_config.json (the tokenizer then runs with its defaults). */
  tokenizerConfigPath: string | null;
  /** Every safetensors file read (one, or each shard). */
  files: string[];
  tensors: Map<string, TensorLocation>;
  /** Name of the tensor the LM head uses: lm_head.weight, or model.embed_tokens.weight with tied embeddings. */
  lmHeadSource: string;
  /** The parsed GGUF file and its tensors under HF names (source 'gguf' only). */
  gguf?: OpenedGguf;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The tensors of one decoder layer with their shapes, in the order a stage file stores them. */
export function layerTensorShapes(c: ModelConfig, layer: number): [string, number[]][] {
  const p = `model.layers.${layer}`;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const out: [string, number[]][] = [[`${p}.input_layernorm.weight`, [c.hiddenSize]]];
  out.push([`${p}.self_attn.q_proj.weight`, [q, c.hiddenSize]]);
  if (c.attentionBias) out.push([`${p}.self_attn.q_proj.bias`, [q]]);
  out.push([`${p}.self_attn.k_proj.weight`, [kv, c.hiddenSize]]);
  if (c.attentionBias) out.push([`${p}.self_attn.k_proj.bias`, [kv]]);
  out.push([`${p}.self_attn.v_proj.weight`, [kv, c.hiddenSize]]);
  if (c.attentionBias) out.push([`${p}.self_attn.v_proj.bias`, [kv]]);
  out.push([`${p}.self_attn.o_proj.weight`, [c.hiddenSize, q]]);
  out.push([`${p}.post_attention_layernorm.weight`, [c.hiddenSize]]);
  out.push([`${p}.mlp.gate_proj.weight`, [c.intermediateSize, c.hiddenSize]]);
  out.push([`${p}.mlp.up_proj.weight`, [c.intermediateSize, c.hiddenSize]]);
  out.push([`${p}.mlp.down_proj.weight`, [c.hiddenSize, c.intermediateSize]]);
  return out;
}

async function indexShards(dir: string, indexPath: string): Promise<Map<string, string>> {
  let parsed: { weight_map?: unknown };
  try {
    parsed = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map?: unknown };
  } catch (err) {
    throw new Error(`${indexPath}: cannot read the shard index: ${(err as Error).message}`);
  }
  const map = parsed.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new Error(`${indexPath}: "weight_map" must map tensor names to shard file names`);
  }
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(map)) {
    // Shard names are plain file names in the folder; refuse anything that would escape it.
    if (typeof file !== 'string' || isAbsolute(file) || normalize(file).startsWith('..')) {
      throw new Error(`${indexPath}: tensor "${name}" maps to an invalid shard ${JSON.stringify(file)}`);
    }
    out.set(name, join(dir, file));
  }
  return out;
}

/**
 * Opens `dir` as a Hugging Face model folder. Checks that config.json and tokenizer.json exist, indexes the
 * tensors, and checks that every tensor the config implies is present with the right shape.
 */
export async function openModelFolder(dirIn: string): Promise<ModelFolder> {
  const dir = resolve(dirIn);
  const config = await readModelConfig(dir);
  const tokenizerJsonPath = join(dir, 'tokenizer.json');
  if (!(await exists(tokenizerJsonPath))) {
    throw new Error(`${tokenizerJsonPath} is missing: ${HF_FOLDER_NEEDS} (copy tokenizer.json from the model's Hugging Face repository)`);
  }
  const tokenizerConfigPath = join(dir, 'tokenizer_config.json');

  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, 'model.safetensors.index.json');
  const tensors = new Map<string, TensorLocation>();
  const files: string[] = [];
  if (await exists(single)) {
    const header = await readSafetensorsHeader(single);
    files.push(single);
    for (const [name, info] of header.tensors) tensors.set(name, { name, header, info });
  } else if (await exists(indexPath)) {
    const weightMap = await indexShards(dir, indexPath);
    const headers = new Map<string, SafetensorsHeader>();
    for (const shard of new Set(weightMap.values())) {
      if (!(await exists(shard))) throw new Error(`${indexPath} lists shard ${shard}, which is missing`);
      headers.set(shard, await readSafetensorsHeader(shard));
      files.push(shard);
    }
    for (const [name, shard] of weightMap) {
      const header = headers.get(shard)!;
      const info = header.tensors.get(name);
      if (!info) throw new Error(`${indexPath} says tensor "${name}" is in ${shard}, but that file has no such tensor`);
      tensors.set(name, { name, header, info });
    }
  } else {
    throw new Error(`${dir} has neither model.safetensors nor model.safetensors.index.json: ${HF_FOLDER_NEEDS} (.bin/.pt checkpoints are not read: convert them to safetensors)`);
  }

  let lmHeadSource = 'lm_head.weight';
  if (config.tieWordEmbeddings) lmHeadSource = 'model.embed_tokens.weight';
  else if (!tensors.has('lm_head.weight')) {
    throw new Error(`${join(dir, 'config.json')} says tie_word_embeddings is false, but no safetensors file has lm_head.weight`);
  }

  const folder: ModelFolder = {
    source: 'hf',
    dir,
    config,
    tokenizerJsonPath,
    tokenizerConfigPath: (await exists(tokenizerConfigPath)) ? tokenizerConfigPath : null,
    files,
    tensors,
    lmHeadSource,
  };
  checkTensorShapes(folder, 'config.json');
  return folder;
}

/** Every tensor the config implies is present with the shape it implies; `configName` says where the config came from. */
function checkTensorShapes(folder: ModelFolder, configName: string): void {
  const config = folder.config;
  const expected: [string, number[]][] = [
    ['model.embed_tokens.weight', [config.vocabSize, config.hiddenSize]],
    ['model.norm.weight', [config.hiddenSize]],
    [folder.lmHeadSource, [config.vocabSize, config.hiddenSize]],
  ];
  for (let i = 0; i < config.numLayers; i++) expected.push(...layerTensorShapes(config, i));
  for (const [name, shape] of expected) {
    const loc = tensorLocation(folder, name);
    if (loc.info.shape.join(',') !== shape.join(',')) {
      throw new Error(`${loc.header.path}: tensor "${loc.info.name}" has shape [${loc.info.shape.join(', ')}] but ${configName} implies [${shape.join(', ')}]`);
    }
  }
}

/**
 * Opens a GGUF model file (gguf-model.ts). A tokenizer.json (and tokenizer_config.json) beside the file is used
 * when present; otherwise loadModelTokenizer builds the tokenizer from the GGUF's tokenizer.ggml.* metadata.
 */
export async function openGgufModel(pathIn: string): Promise<ModelFolder> {
  const path = resolve(pathIn);
  const gguf = await openGguf(path);
  const header = ggufHeaderView(gguf.file, gguf.views);
  const tensors = new Map<string, TensorLocation>();
  for (const [name, view] of gguf.views) tensors.set(name, { name, header, info: ggufTensorInfo(view) });
  const tokenizerJsonPath = join(dirname(path), 'tokenizer.json');
  const tokenizerConfigPath = join(dirname(path), 'tokenizer_config.json');
  const hasTokenizerJson = await exists(tokenizerJsonPath);
  const folder: ModelFolder = {
    source: 'gguf',
    dir: path,
    config: gguf.config,
    tokenizerJsonPath: hasTokenizerJson ? tokenizerJsonPath : null,
    tokenizerConfigPath: hasTokenizerJson && (await exists(tokenizerConfigPath)) ? tokenizerConfigPath : null,
    files: [path],
    tensors,
    lmHeadSource: gguf.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
    gguf,
  };
  checkTensorShapes(folder, 'its metadata');
  return folder;
}

/** The one entry point: a path ending in .gguf is a GGUF file, anything else a Hugging Face folder. */
export async function openModel(path: string): Promise<ModelFolder> {
  return isGgufPath(path) ? openGgufModel(path) : openModelFolder(path);
}

/** Where tensor `name` lives; `lm_head.weight` resolves to the embedding when embeddings are tied. */
export function tensorLocation(folder: ModelFolder, name: string): TensorLocation {
  const resolved = name === 'lm_head.weight' ? folder.lmHeadSource : name;
  const loc = folder.tensors.get(resolved);
  if (!loc) throw new Error(`${folder.dir}: no ${folder.source === 'gguf' ? 'GGUF tensor maps to' : 'safetensors file holds'} tensor "${resolved}" (looked in ${folder.files.join(', ')})`);
  return loc;
}

/** A whole tensor as f32, by HF name, in HF layout (GGUF: q/k rows in rotate-half order, dequantised). */
export async function readModelTensorF32(folder: ModelFolder, name: string): Promise<Float32Array> {
  const loc = tensorLocation(folder, name);
  if (!folder.gguf) return readTensorF32(loc.header, loc.name);
  const bytes = await readModelTensorBytes(folder, name);
  return bytesToF32(bytes, loc.info.dtype, `${loc.header.path}: tensor "${loc.info.name}"`);
}

/** Raw bytes [start, start + length) of a tensor in `tensorLocation(folder, name).info.dtype`, HF layout. */
export async function readModelTensorBytes(folder: ModelFolder, name: string, start?: number, length?: number): Promise<Buffer> {
  const loc = tensorLocation(folder, name);
  if (!folder.gguf) return readTensorBytes(loc.header, loc.name, start, length);
  return readGgufTensorBytes(folder.gguf.file, folder.gguf.views.get(loc.name)!, start, length);
}
