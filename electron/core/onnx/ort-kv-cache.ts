// The KV cache of the decoder graph (llama-kv-graph.ts): one ArrayBuffer allocated once for the maximum length,
// written in place. Each step feeds zero-copy views of the filled rows and appends the step's new rows; nothing
// proportional to the context length is copied, ever. Lives in the ORT worker (ort-worker.ts), never crosses threads.
import ort from 'onnxruntime-node';
import { newKeyName, newValueName, pastKeyName, pastValueName } from './llama-kv-graph.js';

export interface KvCacheShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  /** Batch rows (the decoder graph's `batch`). */
  batch: number;
  /** Positions the cache holds (prompt plus generated tokens). */
  maxLength: number;
}

export class KvCache {
  /** The one allocation; stable for the cache's life (tests check its identity and in-place updates). */
  readonly buffer: ArrayBuffer;
  private readonly slots: number;
  private filled = 0;

  constructor(readonly shape: KvCacheShape) {
    const { numLayers, numKvHeads, headDim, batch, maxLength } = shape;
    this.slots = batch * numKvHeads;
    const bytes = numLayers * 2 * this.slots * maxLength * headDim * 4;
    try {
      this.buffer = new ArrayBuffer(bytes);
    } catch (err) {
      throw new Error(`a KV cache of ${maxLength} positions needs ${(bytes / 2 ** 30).toFixed(2)} GiB and could not be allocated (${(err as Error).message}): lower the maximum length`);
    }
  }

  /** Positions written so far (the next token's position). */
  get length(): number {
    return this.filled;
  }

  reset(): void {
    // Rows beyond `length` are never fed, so stale values need no clearing.
    this.filled = 0;
  }

  /** (maxLength, headDim) region of one layer, key (0) or value (1), and slot. */
  private region(layer: number, kind: 0 | 1, slot: number): Float32Array {
    const { maxLength, headDim } = this.shape;
    const size = maxLength * headDim;
    return new Float32Array(this.buffer, ((layer * 2 + kind) * this.slots + slot) * size * 4, size);
  }

  /** Feeds for the decoder graph's past inputs: views of the filled rows, no copies. */
  pastFeeds(): Record<string, ort.Tensor> {
    const { numLayers, headDim } = this.shape;
    const rows = this.filled * headDim;
    const feeds: Record<string, ort.Tensor> = {};
    for (let layer = 0; layer < numLayers; layer++) {
      for (let s = 0; s < this.slots; s++) {
        feeds[pastKeyName(layer, s)] = new ort.Tensor('float32', this.region(layer, 0, s).subarray(0, rows), [this.filled, headDim]);
        feeds[pastValueName(layer, s)] = new ort.Tensor('float32', this.region(layer, 1, s).subarray(0, rows), [this.filled, headDim]);
      }
    }
    return feeds;
  }

  /** Room for `count` more positions? */
  fits(count: number): boolean {
    return this.filled + count <= this.shape.maxLength;
  }

  /** Writes a step's new rows (outputs new_key.L / new_value.L, (B, KV, T, D)) after the filled ones. */
  append(outputs: Record<string, ort.Tensor>, count: number): void {
    if (!this.fits(count)) throw new Error(`the KV cache holds ${this.shape.maxLength} positions; ${this.filled} + ${count} do not fit`);
    const { numLayers, headDim } = this.shape;
    const rows = count * headDim;
    for (let layer = 0; layer < numLayers; layer++) {
      for (const [kind, name] of [[0, newKeyName(layer)], [1, newValueName(layer)]] as const) {
        const t = outputs[name];
        if (!t) throw new Error(`the decoder graph returned no ${name}`);
        const data = t.data as Float32Array;
        for (let s = 0; s < this.slots; s++) this.region(layer, kind, s).set(data.subarray(s * rows, (s + 1) * rows), this.filled * headDim);
      }
    }
    this.filled += count;
  }
}
