// Text <-> token ids for a model (tokenizer.json + tokenizer_config.json, @huggingface/tokenizers): a Hugging Face
// folder's, or a GGUF file's (a tokenizer.json beside it, else one built from its metadata: gguf-tokenizer.ts).
// No chat templates here (render those with @huggingface/jinja first, then encode with addBos as the template needs).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { HF_FOLDER_NEEDS } from './hf-config.js';
import { isGgufPath } from './gguf-model.js';
import { ggufTokenizerFiles } from './gguf-tokenizer.js';
import { openModel, type ModelFolder } from './model-folder.js';

export interface EncodeOptions {
  /** Prepend the BOS token (when the tokenizer has one). Default true, as Llama tokenizers do. */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (<s>, </s>, ...) from the text. Default true. */
  skipSpecial?: boolean;
}

export interface TextTokenizer {
  /** Number of ids, including added tokens. */
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  idToToken(id: number): string | undefined;
}

async function readJson(path: string, required: boolean): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !required) return null;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${path} is missing: ${HF_FOLDER_NEEDS}`);
    throw err;
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A special token in tokenizer_config.json is either a string or {content: string}. */
function tokenText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/**
 * Loads the tokenizer of the model at `path`: a Hugging Face folder, or a .gguf file (see loadModelTokenizer).
 * BOS is added by this wrapper (not by the tokenizer's post-processor) so `addBos` means the same for every model;
 * the tests check it agrees with the post-processor.
 */
export async function loadTokenizer(path: string): Promise<TextTokenizer> {
  if (isGgufPath(path)) return loadModelTokenizer(await openModel(path));
  const jsonPath = join(path, 'tokenizer.json');
  const tokenizerJson = await readJson(jsonPath, true);
  const tokenizerConfig = (await readJson(join(path, 'tokenizer_config.json'), false)) ?? {};
  return wrapTokenizer(tokenizerJson!, tokenizerConfig, jsonPath);
}

/** The tokenizer of an opened model: its tokenizer.json, or for a GGUF file without one, its metadata's. */
export async function loadModelTokenizer(model: ModelFolder): Promise<TextTokenizer> {
  if (model.tokenizerJsonPath !== null) {
    const tokenizerJson = await readJson(model.tokenizerJsonPath, true);
    const tokenizerConfig = model.tokenizerConfigPath ? ((await readJson(model.tokenizerConfigPath, false)) ?? {}) : {};
    return wrapTokenizer(tokenizerJson!, tokenizerConfig, model.tokenizerJsonPath);
  }
  if (!model.gguf) throw new Error(`${model.dir}: has no tokenizer.json: ${HF_FOLDER_NEEDS}`);
  const built = ggufTokenizerFiles(model.gguf.file);
  return wrapTokenizer(built.tokenizerJson, built.tokenizerConfig, `${model.dir} (tokenizer.ggml metadata)`);
}

/** Our encode/decode around a tokenizers.js Tokenizer; `jsonPath` names the source in errors. */
function wrapTokenizer(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>, jsonPath: string): TextTokenizer {
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (err) {
    throw new Error(`${jsonPath}: cannot build a tokenizer from it: ${(err as Error).message}`);
  }
  const idOf = (key: string): number | null => {
    const text = tokenText(tokenizerConfig[key]);
    if (text === null) return null;
    const id = tok.token_to_id(text);
    return id === undefined ? null : id;
  };
  const bosTokenId = idOf('bos_token');
  const eosTokenId = idOf('eos_token');
  const padTokenId = idOf('pad_token');
  const vocabSize = tok.get_vocab(true).size;
  return {
    vocabSize,
    bosTokenId,
    eosTokenId,
    padTokenId,
    encode(text: string, opts: EncodeOptions = {}): number[] {
      const ids = tok.encode(text, { add_special_tokens: false }).ids;
      return (opts.addBos ?? true) && bosTokenId !== null ? [bosTokenId, ...ids] : ids;
    },
    decode(ids: readonly number[], opts: DecodeOptions = {}): string {
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`token id ${id} is outside the vocabulary [0, ${vocabSize}) of ${jsonPath}`);
      }
      return tok.decode([...ids], { skip_special_tokens: opts.skipSpecial ?? true });
    },
    idToToken(id: number): string | undefined {
      return tok.id_to_token(id);
    },
  };
}

/** The library's own encoding with its post-processor (used by tests to check our BOS handling agrees). */
export async function encodeWithPostProcessor(dir: string, text: string): Promise<number[]> {
  const tokenizerJson = await readJson(join(dir, 'tokenizer.json'), true);
  const tokenizerConfig = (await readJson(join(dir, 'tokenizer_config.json'), false)) ?? {};
  return new Tokenizer(tokenizerJson!, tokenizerConfig).encode(text, { add_special_tokens: true }).ids;
}
