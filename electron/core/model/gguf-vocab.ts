// Tokenizer metadata for llama.cpp's "llama" (SentencePiece) vocabulary: read from a SentencePiece
// tokenizer.model exactly as llama.cpp's convert_hf_to_gguf.py does, or a minimal made-up one for random-weight
// benchmark models. Not a tokenizer (model/tokenizer.ts) and not the GGUF encoding (gguf-write.ts).
import { readFile } from 'node:fs/promises';
import type { GgufValue } from './gguf-write.js';

/** llama.cpp token types (same numbers as SentencePiece's ModelProto.SentencePiece.Type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface SpmVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  bosId: number;
  eosId: number;
  unkId: number;
  addBos: boolean;
  addEos: boolean;
}

/** Minimal protobuf wire reader: just enough for SentencePiece's ModelProto (varint, 32-bit, length-delimited). */
class PbReader {
  pos = 0;
  constructor(private readonly buf: Uint8Array, private readonly end = buf.length) {}
  get done(): boolean { return this.pos >= this.end; }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new Error('tokenizer.model: truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift; // not <<: a value may exceed 31 bits
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new Error('tokenizer.model: varint longer than 10 bytes');
    }
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) {
      const len = this.varint(); // read first: `pos += varint()` would add to the pos from before the length
      this.pos += len;
    }
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`tokenizer.model: unsupported protobuf wire type ${wireType}`);
  }
  sub(): PbReader {
    const len = this.varint();
    const r = new PbReader(this.buf, this.pos + len);
    r.pos = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new Error('tokenizer.model: truncated message');
    return r;
  }
  f32(): number {
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  str(): string {
    const len = this.varint();
    const s = new TextDecoder('utf-8', { fatal: true }).decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }
}

/**
 * Pieces of a SentencePiece model (ModelProto field 1: SentencePiece {1: piece, 2: score, 3: type}), padded to
 * `vocabSize` with "[PAD{i}]" UNUSED tokens as convert_hf_to_gguf.py pads a vocab smaller than the config's.
 */
export function parseSentencePieceModel(bytes: Uint8Array, vocabSize?: number): Pick<SpmVocab, 'tokens' | 'scores' | 'types'> {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const r = new PbReader(bytes);
  while (!r.done) {
    const tag = r.varint();
    if (tag >>> 3 !== 1 || (tag & 7) !== 2) {
      r.skip(tag & 7);
      continue;
    }
    const p = r.sub();
    let piece = '';
    let score = 0;
    let type: number = TOKEN_TYPE.NORMAL; // proto2 default
    while (!p.done) {
      const t = p.varint();
      const field = t >>> 3;
      if (field === 1 && (t & 7) === 2) piece = p.str();
      else if (field === 2 && (t & 7) === 5) score = p.f32();
      else if (field === 3 && (t & 7) === 0) type = p.varint();
      else p.skip(t & 7);
    }
    tokens.push(piece);
    scores.push(score);
    types.push(type);
  }
  if (tokens.length === 0) throw new Error('tokenizer.model holds no pieces: not a SentencePiece model');
  if (vocabSize !== undefined) {
    if (tokens.length > vocabSize) throw new Error(`tokenizer.model has ${tokens.length} pieces but the model's vocab_size is ${vocabSize}`);
    for (let i = tokens.length; i < vocabSize; i++) {
      tokens.push(`[PAD${i}]`);
      scores.push(-1000);
      types.push(TOKEN_TYPE.UNUSED);
    }
  }
  return { tokens, scores, types };
}

export async function readSentencePieceVocab(path: string, ids: { bosId: number; eosId: number; unkId?: number; vocabSize?: number }): Promise<SpmVocab> {
  const v = parseSentencePieceModel(await readFile(path), ids.vocabSize);
  return { ...v, bosId: ids.bosId, eosId: ids.eosId, unkId: ids.unkId ?? 0, addBos: true, addEos: false };
}

/**
 * A made-up SentencePiece-style vocabulary of `vocabSize` tokens for random-weight models (benchmarks feed token
 * ids directly, so only loadability matters): <unk> <s> </s>, the 256 byte tokens llama.cpp's SPM vocab needs
 * (it looks up "<0x0A>" for newline), then distinct "▁t{i}" pieces.
 */
export function minimalSpmVocab(vocabSize: number): SpmVocab {
  if (vocabSize < 259) throw new Error(`a minimal SPM vocab needs at least 259 tokens (3 special + 256 bytes), got ${vocabSize}`);
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_TYPE.BYTE);
  }
  while (tokens.length < vocabSize) {
    tokens.push(`\u2581t${tokens.length}`);
    types.push(TOKEN_TYPE.NORMAL);
  }
  const scores = tokens.map((_, i) => (types[i] === TOKEN_TYPE.NORMAL ? -i : 0));
  return { tokens, scores, types, bosId: 1, eosId: 2, unkId: 0, addBos: true, addEos: false };
}

/** The tokenizer.ggml.* keys llama.cpp reads for a "llama" vocabulary. */
export function spmVocabMetadata(v: SpmVocab): [string, GgufValue][] {
  return [
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', values: v.tokens }],
    ['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', values: v.scores }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', values: v.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: v.bosId }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: v.eosId }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: v.unkId }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: v.addBos }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: v.addEos }],
  ];
}
