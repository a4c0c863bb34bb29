// A tokenizer.json object (and the tokenizer_config.json fields the wrapper reads) built from a GGUF file's
// tokenizer.ggml.* metadata, for @huggingface/tokenizers, the way transformers' GGUF loader does
// (integrations/ggml.py GGUFLlamaConverter / GGUFGPTConverter):
// - "llama" (SentencePiece): BPE with byte_fallback over the pieces, merges derived from the scores as
//   LlamaConverter / generate_merges does (every split of a piece into two pieces of the vocabulary, ordered by the
//   merged piece's score, highest first, ties by the halves' ids), the legacy Llama normalizer (prepend "▁" unless
//   add_space_prefix is false, spaces to "▁") and decoder.
// - "gpt2" (byte-level BPE, Llama 3, Qwen2): the merges the file lists, byte-level pre-tokenizer with the split
//   regex of tokenizer.ggml.pre.
// Control tokens (type 3) and the unknown token become special added tokens, user-defined ones (type 4) added tokens.
import type { GgufFile, GgufMetaValue } from './gguf-read.js';

const TOKEN_TYPE = { UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4 } as const;

/** tokenizer.ggml.pre values -> the pre-tokenizer split regex of the model family (llama.cpp llama-vocab.cpp). */
const GPT2_SPLIT: Record<string, string> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
};
export const SUPPORTED_GGUF_TOKENIZERS = ['llama', 'gpt2'] as const;

export interface GgufTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

function strings(file: GgufFile, key: string): string[] {
  const v = file.metadata.get(key);
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`${file.path}: GGUF metadata "${key}" must be an array of strings`);
  return v as string[];
}

function numbers(file: GgufFile, key: string, length: number): number[] | null {
  const v = file.metadata.get(key);
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number')) {
    throw new Error(`${file.path}: GGUF metadata "${key}" must be an array of ${length} numbers`);
  }
  return v as number[];
}

function id(file: GgufFile, key: string): number | null {
  const v: GgufMetaValue | undefined = file.metadata.get(key);
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null;
}

/** transformers' generate_merges with scores: every (left, right) split of a piece whose halves are both pieces. */
export function spmMerges(tokens: readonly string[], scores: readonly number[]): [string, string][] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => { if (!ids.has(t)) ids.set(t, i); });
  const all: { l: string; r: string; score: number }[] = [];
  tokens.forEach((piece, i) => {
    if (ids.get(piece) !== i) return; // a duplicate piece: Python's dict keeps one entry
    const chars = [...piece]; // code points, as Python slices a str
    const local: { l: string; r: string; score: number }[] = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join('');
      const r = chars.slice(k).join('');
      if (ids.has(l) && ids.has(r)) local.push({ l, r, score: scores[i]! });
    }
    local.sort((a, b) => ids.get(a.l)! - ids.get(b.l)! || ids.get(a.r)! - ids.get(b.r)!);
    all.push(...local);
  });
  all.sort((a, b) => b.score - a.score); // stable: equal scores keep the order above
  return all.map((m) => [m.l, m.r]);
}

function addedTokens(tokens: readonly string[], types: readonly number[] | null, unkId: number | null): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  tokens.forEach((content, i) => {
    const type = types?.[i];
    const special = type === TOKEN_TYPE.CONTROL || i === unkId;
    if (!special && type !== TOKEN_TYPE.USER_DEFINED) return;
    out.push({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
  });
  return out;
}

function bosTemplate(bos: string | null, bosId: number | null, addBos: boolean): Record<string, unknown> | null {
  if (!addBos || bos === null || bosId === null) return null;
  return {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
  };
}

/** Builds the tokenizer of a GGUF file from its metadata; refuses tokenizer models other than llama and gpt2. */
export function ggufTokenizerFiles(file: GgufFile): GgufTokenizerFiles {
  const model = file.metadata.get('tokenizer.ggml.model');
  if (model !== 'llama' && model !== 'gpt2') {
    throw new Error(`${file.path}: tokenizer.ggml.model ${JSON.stringify(model ?? null)} is not supported; supported: ${SUPPORTED_GGUF_TOKENIZERS.join(', ')} (or put the model's tokenizer.json beside the .gguf file)`);
  }
  const tokens = strings(file, 'tokenizer.ggml.tokens');
  const types = numbers(file, 'tokenizer.ggml.token_type', tokens.length);
  const unkId = id(file, 'tokenizer.ggml.unknown_token_id');
  const bosId = id(file, 'tokenizer.ggml.bos_token_id');
  const eosId = id(file, 'tokenizer.ggml.eos_token_id');
  const tokenAt = (i: number | null): string | null => (i !== null && i >= 0 && i < tokens.length ? tokens[i]! : null);
  const addBosMeta = file.metadata.get('tokenizer.ggml.add_bos_token');
  // llama.cpp's default: SPM vocabularies add BOS, byte-level BPE ones do not unless the file says so.
  const addBos = typeof addBosMeta === 'boolean' ? addBosMeta : model === 'llama';
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { if (!(t in vocab)) vocab[t] = i; });
  const bos = tokenAt(bosId);
  const tokenizerConfig: Record<string, unknown> = { bos_token: bos, eos_token: tokenAt(eosId), unk_token: tokenAt(unkId), add_bos_token: addBos };
  if (model === 'llama') {
    const scores = numbers(file, 'tokenizer.ggml.scores', tokens.length);
    if (!scores) throw new Error(`${file.path}: a "llama" tokenizer needs tokenizer.ggml.scores to derive its merges`);
    const addSpacePrefix = file.metadata.get('tokenizer.ggml.add_space_prefix') !== false;
    const normalizers: Record<string, unknown>[] = [];
    if (addSpacePrefix) normalizers.push({ type: 'Prepend', prepend: '\u2581' });
    normalizers.push({ type: 'Replace', pattern: { String: ' ' }, content: '\u2581' });
    const decoders: Record<string, unknown>[] = [
      { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
    ];
    if (addSpacePrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
    return {
      tokenizerConfig,
      tokenizerJson: {
        version: '1.0', truncation: null, padding: null,
        added_tokens: addedTokens(tokens, types, unkId),
        normalizer: { type: 'Sequence', normalizers },
        pre_tokenizer: null,
        post_processor: bosTemplate(bos, bosId, addBos),
        decoder: { type: 'Sequence', decoders },
        model: {
          type: 'BPE', dropout: null, unk_token: tokenAt(unkId), continuing_subword_prefix: null, end_of_word_suffix: null,
          fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: spmMerges(tokens, scores),
        },
      },
    };
  }
  const merges = strings(file, 'tokenizer.ggml.merges').map((m) => {
    const space = m.indexOf(' ');
    if (space <= 0) throw new Error(`${file.path}: tokenizer.ggml.merges entry ${JSON.stringify(m)} is not "left right"`);
    return [m.slice(0, space), m.slice(space + 1)];
  });
  const pre = file.metadata.get('tokenizer.ggml.pre');
  const split = GPT2_SPLIT[typeof pre === 'string' ? pre : 'gpt2'];
  if (split === undefined) throw new Error(`${file.path}: tokenizer.ggml.pre ${JSON.stringify(pre)} is not known; known: ${Object.keys(GPT2_SPLIT).join(', ')} (or put the model's tokenizer.json beside the .gguf file)`);
  return {
    tokenizerConfig,
    tokenizerJson: {
      version: '1.0', truncation: null, padding: null,
      added_tokens: addedTokens(tokens, types, unkId),
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      },
      post_processor: bosTemplate(bos, bosId, addBos),
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
        fuse_unk: false, byte_fallback: false, ignore_merges: pre === 'llama-bpe', vocab, merges,
      },
    },
  };
}
