// Messages between OrtRunner (caller thread) and ort-worker.ts (the worker thread that owns the session).
// Plain structured-clone data; tensor bytes travel as transferred ArrayBuffers. Not a public API.

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

export type ToWorker =
  | { kind: 'init'; model: ArrayBuffer; settings: OrtSessionSettings }
  | { kind: 'run'; id: number; feeds: Record<string, OrtTensorMsg> }
  | { kind: 'close' };

export type FromWorker =
  | { kind: 'ready'; inputNames: string[]; outputNames: string[]; createMs: number }
  | { kind: 'result'; id: number; outputs: Record<string, OrtTensorMsg>; runMs: number }
  | { kind: 'error'; id?: number; message: string };
