// Reads a Hugging Face model folder's config.json (+ generation_config.json when present) into a typed ModelConfig.
// It only understands the Llama-family decoder layouts listed in SUPPORTED_MODEL_TYPES; it does not load weights.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRopeScaling, type RopeScaling } from './rope.js';

/** model_type values whose weights follow the Llama layout (SmolLM, TinyLlama and Llama 2/3 say "llama"). */
export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

export interface ModelConfig {
  modelType: ModelType;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Per-head width; config `head_dim`, else hiddenSize / numHeads. */
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** config.json's rope_scaling when it changes the frequencies (rope.ts); null for plain RoPE. */
  ropeScaling: RopeScaling | null;
  /**
   * Attention window in positions (Mistral's sliding_window; Qwen2's only with use_sliding_window), null when
   * attention is full. The engine computes full attention, exact only for sequences up to this length: the
   * agent refuses longer ones (the stage file carries the window).
   */
  slidingWindow: number | null;
  /** True when there is no lm_head.weight and the head reuses model.embed_tokens.weight. */
  tieWordEmbeddings: boolean;
  /** True when q/k/v projections have biases (Qwen2). */
  attentionBias: boolean;
  bosTokenId: number | null;
  /** Every id that ends generation: config.json's eos_token_id united with generation_config.json's. */
  eosTokenIds: number[];
  maxPositionEmbeddings: number | null;
}

export const HF_FOLDER_NEEDS =
  'a Hugging Face model folder needs config.json, model.safetensors (or model.safetensors.index.json with its shards), ' +
  'tokenizer.json (and normally tokenizer_config.json)';

async function readJsonFile(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (!required) return null;
      throw new Error(`${path} is missing: ${HF_FOLDER_NEEDS}`);
    }
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

function slidingWindowOf(raw: Record<string, unknown>, modelType: string, path: string): number | null {
  // Qwen2 configs carry sliding_window even when it is off; transformers applies it only with use_sliding_window.
  if (modelType === 'qwen2' && raw.use_sliding_window !== true) return null;
  const w = raw.sliding_window;
  if (w === undefined || w === null) return null;
  if (typeof w !== 'number' || !Number.isInteger(w) || w <= 0) throw new Error(`${path}: "sliding_window" must be a positive integer or null, got ${JSON.stringify(w)}`);
  return w;
}

/** Parses an already-read config.json object; `path` only names the file in errors. */
export function parseModelConfig(raw: Record<string, unknown>, path: string, generation?: Record<string, unknown> | null): ModelConfig {
  const modelType = raw.model_type;
  if (typeof modelType !== 'string' || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new Error(
      `${path}: model_type ${JSON.stringify(modelType ?? null)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')} ` +
        '(Llama-family decoders such as Llama 2/3, SmolLM, TinyLlama, Mistral, Qwen2)',
    );
  }
  const int = (key: string, fallback?: number): number => {
    const v = raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new Error(`${path}: required field "${key}" is missing`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new Error(`${path}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new Error(`${path}: "${key}" must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (raw.head_dim === undefined || raw.head_dim === null) {
    if (hiddenSize % numHeads !== 0) {
      throw new Error(`${path}: hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} and there is no head_dim`);
    }
  }
  const headDim = int('head_dim', hiddenSize / numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new Error(`${path}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const eos = new Set<number>([...idList(raw.eos_token_id), ...idList(generation?.eos_token_id)]);
  const bos = typeof raw.bos_token_id === 'number' ? raw.bos_token_id : null;
  const maxPos = raw.max_position_embeddings;
  return {
    modelType: modelType as ModelType,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int('vocab_size'),
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    ropeScaling: parseRopeScaling(raw.rope_scaling, path),
    slidingWindow: slidingWindowOf(raw, modelType, path),
    // transformers' PretrainedConfig defaults tie_word_embeddings to true; Llama configs state it explicitly.
    tieWordEmbeddings: raw.tie_word_embeddings === undefined ? true : raw.tie_word_embeddings === true,
    // Qwen2 always has q/k/v biases and its config has no attention_bias key.
    attentionBias: modelType === 'qwen2' ? true : raw.attention_bias === true,
    bosTokenId: bos,
    eosTokenIds: [...eos].sort((a, b) => a - b),
    maxPositionEmbeddings: typeof maxPos === 'number' ? maxPos : null,
  };
}

/** Reads `folder`/config.json (required) and `folder`/generation_config.json (optional). */
export async function readModelConfig(folder: string): Promise<ModelConfig> {
  const path = join(folder, 'config.json');
  const raw = await readJsonFile(path, true);
  const generation = await readJsonFile(join(folder, 'generation_config.json'), false);
  return parseModelConfig(raw!, path, generation);
}
