// Data types shared by the core, the CLI, the headless server and the renderer (through the API contract).
// Plain JSON-serialisable values only: they cross IPC and WebSocket boundaries unchanged.

/** A phone as seen through an adb server. `state` is adb's own word (device, unauthorized, offline, ...). */
export interface DeviceInfo {
  /**
   * Stable id across adb servers: "<server>/<serial>", e.g. "127.0.0.1:5037/R58N12ABC". Select devices by it; a
   * plain serial still selects a phone of the default server.
   */
  id: string;
  /** The adb server that sees the phone, "host:port" (127.0.0.1:5037 is the local default). */
  server: string;
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
  /** Possible CPUs (/sys/devices/system/cpu/possible); 0 when unknown. */
  cpuCores: number;
  /** cpuinfo_max_freq per CPU in kHz, index = CPU number; null where unreadable, [] when unknown. */
  cpuMaxFreqsKHz: Array<number | null>;
  batteryPercent: number | null;
  /** true while charging, false on battery (or plugged but not charging); null when unknown. */
  batteryCharging: boolean | null;
  /** Battery temperature (dumpsys battery). */
  temperatureC: number | null;
  /** Thermal zones with a usable reading (/sys/class/thermal/thermal_zone*), by zone number. */
  thermalZones: DeviceThermalZone[];
  virtual: boolean;
}

export interface DeviceThermalZone {
  zone: number;
  /** The zone's type, e.g. "battery", "cpu-1-0-usr", "skin-therm". */
  type: string;
  tempC: number;
}

/** What device discovery knows about one adb server (shown while a server is down or restarting). */
export interface AdbServerStatus {
  /** "host:port". */
  server: string;
  /** connecting: first attempt; ready: the server answers (a watcher follows it live); unavailable: down (a watcher retries with back-off). */
  state: 'connecting' | 'ready' | 'unavailable';
  /** For a person: empty when ready, else what failed and when the next attempt is. */
  message: string;
  /** Delay before the next attempt while unavailable; null otherwise. */
  retryInMs: number | null;
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
  /** The micro-batch; in P-RGE the op of the step (several ops per micro-batch when its queries are split). */
  micro: number;
  startMs: number;
  endMs: number;
}

/** Wire format of the activations and gradients relayed between stages: f16 halves the bytes. */
export type RelayDtype = 'f16' | 'f32';

/** Events streamed while a run trains; also written one per line to runs/<id>/events.jsonl. */
export type TrainEvent =
  | { type: 'run-started'; runId: string; runDir: string; plan: TrainPlan; timeMs: number }
  /** What the run is doing, in words; the 'planning' and 'measured' phases also carry their numbers (run.json's records). */
  | { type: 'phase'; runId: string; phase: string; detail: string; timeMs: number; data?: unknown }
  /**
   * A file going to a phone. bytesPerSec and etaMs (null while unknown) over the last few seconds; phase says what
   * the deployer is doing (e.g. pushing, verifying, skipped: already on the phone); attempt counts retries from 1;
   * resumedFromBytes is where a resumed push started.
   */
  | {
      type: 'push-progress'; runId: string; serial: string; file: string; bytesSent: number; bytesTotal: number; timeMs: number;
      bytesPerSec?: number; etaMs?: number | null; phase?: string; attempt?: number; resumedFromBytes?: number;
    }
  /** tokPerSec: trained (mask-weighted) tokens of this step per second; etaMs: the remaining steps at the mean step time so far. */
  | { type: 'step'; runId: string; step: number; totalSteps: number; loss: number; lr: number; tokPerSec: number; timeMs: number; stepMs?: number; etaMs?: number }
  /**
   * The step's pipeline: every forward/backward of every micro-batch on every stage (spans), and the activation and
   * gradient bytes relayed through the host (each tensor counted once) in relayDtype.
   */
  | { type: 'timeline'; runId: string; step: number; gradNorm: number; relayBytes: number; relayDtype?: RelayDtype; spans: PipelineSpan[]; timeMs: number }
  /**
   * One stage's share of a step, all per step (not cumulative): busyMs the agent's compute time, idleMs the rest of
   * the step's wall time (waiting on neighbours, the host, the wire), bytesIn/bytesOut what its session read/wrote.
   * busyByBackendMs splits the compute by backend: cpu the time the agent computed on its CPU backend, opencl the
   * time OpenCL spent on the layers' shares a head split gave it (issue to completion); OpenCL runs beside the CPU,
   * so cpu + opencl may exceed busyMs, and opencl is 0 without a split. temperatureC is the phone's hottest CPU/GPU
   * thermal zone (°C) when the step ended, read by the agent itself, temperatureZone that zone's type (e.g.
   * "cpu-1-4-usr"); null when the phone lets no zone be read. Both absent from an agent that does not report them.
   */
  | {
      type: 'device-step'; runId: string; step: number; serial: string; busyMs: number; rssBytes: number; peakRssBytes: number; bytesIn: number; bytesOut: number; timeMs: number;
      idleMs?: number;
      busyByBackendMs?: { cpu: number; opencl: number };
      temperatureC?: number | null;
      temperatureZone?: string;
    }
  /** A checkpoint was written completely (runs/<id>/checkpoints/step-N) and is now the one a resume or recovery uses. */
  | { type: 'checkpoint'; runId: string; step: number; dir: string; bytes: number; timeMs: number }
  /** Training stopped because phones were lost; a recovery (re-plan on the rest, restore the checkpoint) follows unless it says giveUp. */
  | { type: 'paused'; runId: string; step: number; lostSerials: string[]; reason: string; attempt: number; giveUp: boolean; timeMs: number }
  /** Training goes on after a recovery or a resume, from the checkpoint of fromStep (0: the initial adapter), on this plan. */
  | { type: 'resumed'; runId: string; fromStep: number; plan: TrainPlan; attempt: number; timeMs: number }
  /** The user held the run (paused: true) before step `step`, or let it go on (false); the phones keep their state meanwhile. */
  | { type: 'hold'; runId: string; step: number; paused: boolean; timeMs: number }
  | { type: 'eval'; runId: string; when: 'before' | 'after'; loss: number; timeMs: number }
  | { type: 'run-finished'; runId: string; runDir: string; ok: boolean; error?: string; timeMs: number };

/** What the Model step shows about an opened model (core/model/model-summary.ts fills it). */
export interface ModelFacts {
  source: 'hf' | 'gguf';
  modelType: string;
  numLayers: number;
  hiddenSize: number;
  /** MLP width (the GPU's share of it is counted in these columns). */
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  vocabSize: number;
  paramCount: number;
  /** Storage types of the weights with their parameter counts, largest first, e.g. [["BF16", 1.2e9], ["F32", 2e5]]. */
  storage: [string, number][];
  /** e.g. "llama3 ×8", "linear ×2", null for plain RoPE. */
  ropeScaling: string | null;
  slidingWindow: number | null;
  tiedEmbeddings: boolean;
  attentionBias: boolean;
}
