// The "try it" step's generator for the service: onnxruntime on the workstation, the base model or base + a run's
// adapter, text streamed piece by piece to a callback, stoppable by stream id. Keeps the last model loaded, since
// people try several prompts in a row. Knows nothing of the UI transport (the service turns pieces into events).
import { join } from 'node:path';
import type { TextTokenizer } from '../model/tokenizer.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { OrtLanguageModel, type GenerationStats } from './ort-generate.js';
import { loadLlmWeights } from './ort-llm-weights.js';
import { generateTextStream } from './ort-text.js';

export interface TryItRequest {
  modelDir: string;
  /** The run folder whose adapter/ to add; null for the base model. */
  runDir: string | null;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Names this generation for stop(); pieces are only streamed when it is set. */
  streamId?: string;
}

export class TryItGenerator {
  private loaded: { key: string; model: OrtLanguageModel; tok: TextTokenizer; stopIds: number[] } | null = null;
  private loading: Promise<NonNullable<TryItGenerator['loaded']>> | null = null;
  private readonly active = new Map<string, AbortController>();

  /** Generates the continuation (prompt not repeated), calling onPiece with each piece of text as it comes. */
  async generate(r: TryItRequest, onPiece: (piece: string, index: number) => void): Promise<{ text: string; stats: GenerationStats }> {
    if (r.streamId && this.active.has(r.streamId)) throw new Error(`a generation named ${r.streamId} is already running`);
    const abort = new AbortController();
    if (r.streamId) this.active.set(r.streamId, abort);
    try {
      const { model, tok, stopIds } = await this.model(r.modelDir, r.runDir);
      const stream = generateTextStream(model, tok, r.prompt, { maxNewTokens: r.maxNewTokens, temperature: r.temperature, topP: r.topP, seed: r.seed, stopIds }, abort.signal);
      let text = '';
      let index = 0;
      for await (const piece of stream.pieces) {
        text += piece;
        onPiece(piece, index++);
      }
      return { text, stats: await stream.done };
    } finally {
      if (r.streamId) this.active.delete(r.streamId);
    }
  }

  /** Stops the named generation; its generate() resolves with the text so far. */
  stop(streamId: string): void {
    const abort = this.active.get(streamId);
    if (!abort) throw new Error(`no generation named ${streamId} is running`);
    abort.abort();
  }

  async dispose(): Promise<void> {
    for (const abort of this.active.values()) abort.abort();
    const loaded = this.loaded ?? (await this.loading?.catch(() => null));
    this.loaded = null;
    await loaded?.model.close();
  }

  private async model(modelDir: string, runDir: string | null): Promise<NonNullable<TryItGenerator['loaded']>> {
    const key = JSON.stringify([modelDir, runDir]);
    if (this.loaded?.key === key) return this.loaded;
    // One load at a time: a second request for another model waits, then replaces it.
    await this.loading?.catch(() => undefined);
    if (this.loaded?.key === key) return this.loaded;
    this.loading = (async () => {
      const previous = this.loaded;
      this.loaded = null;
      await previous?.model.close();
      const { config, weights, loraScale } = await loadLlmWeights(modelDir, runDir ? join(runDir, 'adapter') : undefined);
      const model = await OrtLanguageModel.create(config, weights, { loraScale });
      return { key, model, tok: await loadTokenizer(modelDir), stopIds: config.eosTokenIds };
    })();
    this.loaded = await this.loading;
    this.loading = null;
    return this.loaded;
  }
}
