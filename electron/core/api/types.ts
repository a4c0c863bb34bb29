// Data types shared by the core, the CLI, the headless server and the renderer (through the API contract).
// Plain JSON-serialisable values only: they cross IPC and WebSocket boundaries unchanged.

/** A phone as seen through an adb server. `state` is adb's own word (device, unauthorized, offline, ...). */
export interface DeviceInfo {
  /** adb serial, e.g. "R58N12ABC" or "127.0.0.1:40101" for a TCP/virtual phone. */
  serial: string;
  state: string;
  /** What the user should do when state is not "device"; empty when ready. */
  guidance: string;
  manufacturer: string;
  model: string;
  androidVersion: string;
  soc: string;
  abis: string[];
  ramTotalBytes: number;
  ramAvailableBytes: number;
  batteryPercent: number | null;
  temperatureC: number | null;
  virtual: boolean;
}

/** Layers [layerStart, layerEnd) of the model on one device. */
export interface StagePlan {
  serial: string;
  layerStart: number;
  layerEnd: number;
  hasEmbedding: boolean;
  hasHead: boolean;
  predictedBytes: number;
}

export interface TrainPlan {
  stages: StagePlan[];
  microBatches: number;
  microBatchSize: number;
  seqLen: number;
}

/** One forward (F) or backward (B) of one micro-batch on one pipeline stage; times in ms on the host's clock. */
export interface PipelineSpan {
  stage: number;
  serial: string;
  kind: 'F' | 'B';
  micro: number;
  startMs: number;
  endMs: number;
}

/** Events streamed while a run trains; also written one per line to runs/<id>/events.jsonl. */
export type TrainEvent =
  | { type: 'run-started'; runId: string; runDir: string; plan: TrainPlan; timeMs: number }
  | { type: 'phase'; runId: string; phase: string; detail: string; timeMs: number }
  | { type: 'push-progress'; runId: string; serial: string; file: string; bytesSent: number; bytesTotal: number; timeMs: number }
  | { type: 'step'; runId: string; step: number; totalSteps: number; loss: number; lr: number; tokPerSec: number; timeMs: number }
  | { type: 'timeline'; runId: string; step: number; gradNorm: number; relayBytes: number; spans: PipelineSpan[]; timeMs: number }
  /** busyMs: the agent's compute time during this step (not cumulative). */
  | { type: 'device-step'; runId: string; step: number; serial: string; busyMs: number; rssBytes: number; peakRssBytes: number; bytesIn: number; bytesOut: number; timeMs: number }
  | { type: 'eval'; runId: string; when: 'before' | 'after'; loss: number; timeMs: number }
  | { type: 'run-finished'; runId: string; runDir: string; ok: boolean; error?: string; timeMs: number };
