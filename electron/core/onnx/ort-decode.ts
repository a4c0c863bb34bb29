// Token-by-token generation with the decoder graph and its KV cache, on the thread that owns the session (the ORT
// worker; tests may drive it directly). The prompt goes through in one run, then one run per new token.
import ort from 'onnxruntime-node';
import { mulberry32 } from '../data/rng.js';
import { KvCache } from './ort-kv-cache.js';
import { MODEL_INPUT, MODEL_OUTPUT } from './llama-kv-graph.js';
import { pickToken, type SamplingOptions } from './ort-sampler.js';

export interface GenerationOptions extends SamplingOptions {
  maxNewTokens: number;
  seed: number;
  /** Ids that end generation; the stop id itself is not emitted. */
  stopIds: readonly number[];
}

export type StopReason = 'stop-id' | 'max-new-tokens' | 'cache-full' | 'cancelled';

export interface GenerationStats {
  reason: StopReason;
  promptTokens: number;
  newTokens: number;
  /** session.run time of the prompt, and of the single-token steps together. */
  prefillMs: number;
  decodeMs: number;
}

/** One session of the decoder graph (batch 1) with its cache. */
export class KvDecoder {
  constructor(
    private readonly session: ort.InferenceSession,
    readonly cache: KvCache,
    private readonly vocabSize: number,
  ) {}

  /** Runs `ids` at the next positions and appends them to the cache; returns their logits (T, vocab). */
  async forward(ids: readonly number[]): Promise<Float32Array> {
    if (!this.cache.fits(ids.length)) throw new Error(`the KV cache holds ${this.cache.shape.maxLength} positions; ${this.cache.length} + ${ids.length} do not fit`);
    const feeds = this.cache.pastFeeds();
    feeds[MODEL_INPUT] = new ort.Tensor('int64', BigInt64Array.from(ids, (id) => BigInt(id)), [1, ids.length]);
    const out = await this.session.run(feeds);
    this.cache.append(out, ids.length);
    const logits = out[MODEL_OUTPUT]!.data as Float32Array;
    if (logits.length !== ids.length * this.vocabSize) throw new Error(`the decoder graph returned ${logits.length} logits for ${ids.length} tokens of a ${this.vocabSize}-token vocabulary`);
    return logits;
  }

  /**
   * Continues `promptIds` from an empty cache, calling `onToken` with each new id as soon as it is picked.
   * `cancelled` is asked between steps (the worker's message handler sets it while a step awaits).
   */
  async generate(promptIds: readonly number[], o: GenerationOptions, onToken: (id: number) => void, cancelled: () => boolean): Promise<GenerationStats> {
    if (promptIds.length === 0) throw new Error('the prompt has no tokens: generation needs at least one (e.g. BOS)');
    this.cache.reset();
    const random = mulberry32(o.seed);
    const V = this.vocabSize;
    const stats: GenerationStats = { reason: 'max-new-tokens', promptTokens: promptIds.length, newTokens: 0, prefillMs: 0, decodeMs: 0 };
    let t0 = performance.now();
    let logits = await this.forward(promptIds);
    stats.prefillMs = performance.now() - t0;
    let offset = (promptIds.length - 1) * V;
    while (stats.newTokens < o.maxNewTokens) {
      if (cancelled()) return { ...stats, reason: 'cancelled' };
      const next = pickToken(logits, offset, V, o, random);
      if (o.stopIds.includes(next)) return { ...stats, reason: 'stop-id' };
      onToken(next);
      stats.newTokens++;
      if (stats.newTokens === o.maxNewTokens) break;
      if (!this.cache.fits(1)) return { ...stats, reason: 'cache-full' };
      t0 = performance.now();
      logits = await this.forward([next]);
      stats.decodeMs += performance.now() - t0;
      offset = 0;
    }
    return stats;
  }
}
