// Messages between the caller thread (OrtRunner for any graph, OrtLanguageModel in ort-generate.ts for a Llama) and
// ort-worker.ts (the worker thread that owns the sessions and the KV cache). Plain structured-clone data; tensor
// and model bytes travel as transferred ArrayBuffers; generated tokens one message each. Not a public API.
import type { GenerationOptions, GenerationStats } from './ort-decode.js';
import type { LossSample, LossSums } from './ort-loss.js';

export type OrtElem = 'float32' | 'int64' | 'int32';

export interface OrtTensorMsg {
  type: OrtElem;
  dims: number[];
  /** Exactly the tensor's bytes (transferred, so the sender loses it). */
  data: ArrayBuffer;
}

export interface OrtSessionSettings {
  intraOpNumThreads: number;
  /** Default 'all', onnxruntime's own default: fusions (e.g. RMSNorm) are part of what a peer normally gets. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

/** A Llama in the worker: the decoder graph (generation) and/or the full-sequence graph (loss). */
export interface LlmInit {
  decoder?: ArrayBuffer;
  full?: ArrayBuffer;
  settings: OrtSessionSettings;
  vocabSize: number;
  /** KV cache geometry, used with `decoder`. */
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  maxLength: number;
}

export type ToWorker =
  | { kind: 'init'; model: ArrayBuffer; settings: OrtSessionSettings }
  | { kind: 'run'; id: number; feeds: Record<string, OrtTensorMsg> }
  | { kind: 'init-llm'; llm: LlmInit }
  | { kind: 'generate'; id: number; promptIds: number[]; options: GenerationOptions }
  | { kind: 'cancel'; id: number }
  | { kind: 'loss'; id: number; samples: LossSample[]; batchSize: number }
  | { kind: 'close' };

export type FromWorker =
  | { kind: 'ready'; inputNames: string[]; outputNames: string[]; createMs: number }
  | { kind: 'result'; id: number; outputs: Record<string, OrtTensorMsg>; runMs: number }
  | { kind: 'token'; id: number; tokenId: number }
  | { kind: 'generated'; id: number; stats: GenerationStats }
  | { kind: 'loss-result'; id: number; sums: LossSums; runMs: number }
  | { kind: 'error'; id?: number; message: string };
