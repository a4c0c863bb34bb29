// A Llama run by onnxruntime in a worker thread, seen from the caller's thread: streamed generation (an async
// iterator of token ids, cancellable) with the KV-cache graph, and the loss of samples with the full-sequence graph.
// The graphs are built here and handed to ort-worker.ts once; tokens arrive one message each.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { ModelConfig } from '../model/hf-config.js';
import { buildModelGraph } from './llama-graph.js';
import { buildDecoderGraph } from './llama-kv-graph.js';
import type { WeightMap } from './llama-ops.js';
import type { GenerationOptions, GenerationStats } from './ort-decode.js';
import type { LossSample } from './ort-loss.js';
import type { FromWorker, ToWorker } from './ort-messages.js';
import { startOrtWorker, stopOrtWorker } from './ort-runner.js';

export type { GenerationOptions, GenerationStats, LossSample };

export interface LlmOptions {
  /** Adds every LoRA adapter of the weight map at this scale (llama-ops.ts). */
  loraScale?: number;
  /** Build the KV-cache graph (generate) and/or the full-sequence graph (loss). Default: generate only. */
  generate?: boolean;
  loss?: boolean;
  /** Positions the KV cache holds, prompt included (default: max_position_embeddings, at most 2048). */
  maxLength?: number;
  /** onnxruntime intra-op threads (default: all cores but one, at most 4). */
  threads?: number;
}

const DEFAULT_MAX_LENGTH = 2048;
/** Samples per loss run: bounds the logits tensor (rows x T x vocab) without one run per sample. */
const LOSS_BATCH = 8;

/** Token ids as they are generated; ends when generation stops. Breaking out of the loop cancels it. */
export interface TokenStream extends AsyncIterable<number> {
  /** Why and after how much work generation ended (rejects if it failed). */
  readonly done: Promise<GenerationStats>;
  cancel(): void;
}

type Pending =
  | { kind: 'generate'; onToken(id: number): void; resolve(s: GenerationStats): void; reject(e: Error): void }
  | { kind: 'loss'; resolve(r: { lossSum: number; weightSum: number; runMs: number }): void; reject(e: Error): void };

export class OrtLanguageModel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private dead: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly config: ModelConfig,
    readonly maxLength: number,
    /** Graph building plus session creation, ms. */
    readonly loadMs: number,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.failAll(new Error(`ORT worker failed: ${e.message}`)));
    worker.on('exit', (code) => this.failAll(new Error(`ORT worker exited (code ${code})`)));
  }

  /** Builds the graphs from `weights` (which may be dropped afterwards) and starts the worker. */
  static async create(config: ModelConfig, weights: WeightMap, o: LlmOptions = {}): Promise<OrtLanguageModel> {
    const t0 = performance.now();
    const wantGenerate = o.generate ?? true;
    if (!wantGenerate && !o.loss) throw new Error('OrtLanguageModel: choose generate, loss or both');
    // The graph attends to every cached position: with a sliding window (Mistral) that is exact only inside the
    // window, so the cache (and so the prompt plus continuation) stops there and a longer request gets an error.
    const requested = o.maxLength ?? Math.min(config.maxPositionEmbeddings ?? DEFAULT_MAX_LENGTH, DEFAULT_MAX_LENGTH);
    const maxLength = Math.min(requested, config.slidingWindow ?? Infinity);
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new Error(`maxLength must be a positive integer, got ${maxLength}`);
    const graphOpts = { loraScale: o.loraScale };
    // Each graph is built and turned into an owned buffer before the next, so at most one serialised copy waits.
    const decoder = wantGenerate ? owned(buildDecoderGraph(config, weights, graphOpts)) : undefined;
    const full = o.loss ? owned(buildModelGraph(config, weights, graphOpts)) : undefined;
    const threads = o.threads ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    const { worker } = await startOrtWorker(
      { kind: 'init-llm', llm: { decoder, full, settings: { intraOpNumThreads: threads }, vocabSize: config.vocabSize, numLayers: config.numLayers, numKvHeads: config.numKvHeads, headDim: config.headDim, maxLength } },
      [decoder, full].filter((b) => b !== undefined),
    );
    return new OrtLanguageModel(worker, config, maxLength, performance.now() - t0);
  }

  /** Continues `promptIds` (BOS included if the model wants it), streaming the new ids. */
  generate(promptIds: readonly number[], options: GenerationOptions, signal?: AbortSignal): TokenStream {
    const id = this.nextId++;
    const queue: number[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    const done = new Promise<GenerationStats>((resolve, reject) => {
      const settle = () => {
        finished = true;
        signal?.removeEventListener('abort', cancel);
        wake?.();
      };
      if (this.dead) return reject(this.dead);
      this.pending.set(id, {
        kind: 'generate',
        onToken: (t) => {
          queue.push(t);
          wake?.();
        },
        resolve: (s) => (settle(), resolve(s)),
        reject: (e) => (settle(), reject(e)),
      });
      this.worker.postMessage({ kind: 'generate', id, promptIds: [...promptIds], options: { ...options, stopIds: [...options.stopIds] } } satisfies ToWorker);
    });
    const cancel = () => {
      if (!finished && !this.dead) this.worker.postMessage({ kind: 'cancel', id } satisfies ToWorker);
    };
    if (signal?.aborted) cancel();
    else signal?.addEventListener('abort', cancel, { once: true });
    return {
      done,
      cancel,
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            if (queue.length > 0) yield queue.shift()!;
            else if (finished) break;
            else await new Promise<void>((r) => (wake = r));
          }
          await done; // a failure after the last token still surfaces
        } finally {
          cancel(); // the consumer stopped early (break/throw): stop generating
        }
      },
    };
  }

  /** Mean next-token loss over the samples' masked positions (full-sequence graph; needs `loss: true`). */
  async loss(samples: readonly LossSample[]): Promise<{ loss: number; tokens: number; runMs: number }> {
    if (this.dead) throw this.dead;
    const id = this.nextId++;
    const plain = samples.map((s) => ({ tokens: Array.from(s.tokens), targets: Array.from(s.targets), mask: Array.from(s.mask) }));
    const r = await new Promise<{ lossSum: number; weightSum: number; runMs: number }>((resolve, reject) => {
      this.pending.set(id, { kind: 'loss', resolve, reject });
      this.worker.postMessage({ kind: 'loss', id, samples: plain, batchSize: LOSS_BATCH } satisfies ToWorker);
    });
    if (r.weightSum <= 0) throw new Error('the samples have no position with a non-zero loss mask');
    return { loss: r.lossSum / r.weightSum, tokens: r.weightSum, runMs: r.runMs };
  }

  async close(): Promise<void> {
    if (this.dead) return;
    this.failAll(new Error('the ORT language model was closed'));
    await stopOrtWorker(this.worker);
  }

  private onMessage(m: FromWorker): void {
    if (!('id' in m) || m.id === undefined) return;
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.kind === 'token' && p.kind === 'generate') return p.onToken(m.tokenId);
    this.pending.delete(m.id);
    if (m.kind === 'generated' && p.kind === 'generate') p.resolve(m.stats);
    else if (m.kind === 'loss-result' && p.kind === 'loss') p.resolve({ ...m.sums, runMs: m.runMs });
    else p.reject(new Error(m.kind === 'error' ? `onnxruntime: ${m.message}` : `unexpected ORT worker reply ${m.kind}`));
  }

  private failAll(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** The graph bytes in an ArrayBuffer of their own (transferable without copying the rest of a larger buffer). */
function owned(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
}
