// The one API contract between the UI and the core: method names, parameter schemas, result types, event channels,
// the reply envelope, and the validate-then-call helper that the IPC bridge and the WebSocket server both use.
// It is not an implementation of any method (that is ConfidantService in electron/core/service.ts), and it must
// stay free of Node and DOM APIs: the renderer imports its types, the shell and the headless server its values.
import { z } from 'zod';
import { WEIGHT_FORMATS } from '../model/quantize.js';
import { datasetOptionsSchema, previewDatasetParams, type DatasetDetails } from '../data/dataset-contract.js';
import type { DeviceInfo, ModelFacts, TrainEvent, TrainPlan } from './types.js';
import type { PlanPreview } from './plan-types.js';

export type { PlanPreview, PlanPreviewStage, LayoutStage } from './plan-types.js';

// ---------------------------------------------------------------------------------------------------------------
// Parameters: one zod schema per method. Strict objects, so a misspelt key is an error instead of being ignored.

const nonEmptyPath = (what: string) =>
  z.string({ error: `${what} must be a string` }).trim().min(1, { error: `${what} is empty: enter a path` });

const noParams = z.strictObject({});

const deviceIds = z
  .array(z.string().min(1), { error: 'serials must be a list of device ids (server/serial) or serials' })
  .min(1, { error: 'select at least one device' });
const weightFormat = z.enum(WEIGHT_FORMATS, { error: `weightFormat must be one of ${WEIGHT_FORMATS.join(', ')}` });
const trainMode = z.enum(['backprop', 'zo'], { error: "mode must be 'backprop' or 'zo'" });
const seqLen = z.int({ error: 'seqLen must be a whole number' }).min(8, { error: 'seqLen must be at least 8' }).max(32_768, { error: 'seqLen must be at most 32768' });
/** Pipeline stages in order: each device's contiguous layer range (the core checks they cover the model). */
const layout = z
  .array(
    z.strictObject({
      serial: z.string().min(1, { error: 'a layout stage needs the serial of its phone' }),
      layerStart: z.int({ error: 'layerStart must be a whole number' }).min(0, { error: 'layerStart must be at least 0' }),
      layerEnd: z.int({ error: 'layerEnd must be a whole number' }).min(1, { error: 'layerEnd must be at least 1' }),
    }),
    { error: 'layout must be a list of {serial, layerStart, layerEnd}' },
  )
  .min(1, { error: 'layout needs at least one stage' })
  .max(64, { error: 'layout has more than 64 stages' });

export const methodParams = {
  listDevices: noParams,
  probeDevice: z.strictObject({ id: z.string().min(1, { error: 'id is empty: pass a device id (server/serial)' }) }),
  startVirtualPhones: z.strictObject({
    count: z.int({ error: 'count must be a whole number' }).min(1, { error: 'count must be at least 1' }).max(8, {
      error: 'count must be at most 8 virtual phones',
    }),
  }),
  inspectModel: z.strictObject({ path: nonEmptyPath('model path') }),
  previewDataset: previewDatasetParams,
  planTraining: z.strictObject({
    modelPath: nonEmptyPath('model path'),
    serials: deviceIds,
    weightFormat: weightFormat.optional(),
    mode: trainMode.optional(),
    /** Tokens per sequence (the Data step's choice); default the training default. */
    seqLen: seqLen.optional(),
    /** Predict this layout instead of suggesting one (the Plan step's edits). */
    layout: layout.optional(),
  }),
  startTraining: z.strictObject({
    modelPath: nonEmptyPath('model path'),
    datasetPath: nonEmptyPath('dataset path'),
    serials: deviceIds,
    steps: z.int({ error: 'steps must be a whole number' }).min(1, { error: 'steps must be at least 1' }).max(100_000, {
      error: 'steps must be at most 100000',
    }),
    weightFormat: weightFormat.optional(),
    /** backprop: 1F1B LoRA with AdamW (default); zo: forward-only P-RGE with LoRA-FA. */
    mode: trainMode.optional(),
    /** How to read the dataset file (format, columns, skipping bad rows) and the sequence length. */
    dataset: datasetOptionsSchema.optional(),
    /** Delete the stage files from the phones when the run ends (default: keep them, so the next run skips the push). */
    removeStageFiles: z.boolean({ error: 'removeStageFiles must be true or false' }).optional(),
    /** Train on this layout (planTraining's stages, possibly edited) instead of the job's own first split. */
    layout: layout.optional(),
    /** Re-plan from the measured speeds and redeploy when clearly faster (default true; the Plan step turns it off for an edited layout). */
    replan: z.boolean({ error: 'replan must be true or false' }).optional(),
  }),
  stopTraining: z.strictObject({ runId: z.string().min(1, { error: 'runId is empty' }) }),
  /** Holds the run between two steps (the phones keep their stages and state) or lets it go on. */
  pauseTraining: z.strictObject({
    runId: z.string().min(1, { error: 'runId is empty' }),
    paused: z.boolean({ error: 'paused must be true or false' }),
  }),
  listRuns: noParams,
  openRun: z.strictObject({ runId: z.string().min(1, { error: 'runId is empty' }) }),
  exportAdapter: z.strictObject({
    runId: z.string().min(1, { error: 'runId is empty' }),
    format: z.enum(['peft', 'gguf', 'merged'], { error: "format must be 'peft', 'gguf' or 'merged'" }),
    /** A folder for peft and merged, a .gguf file for gguf. */
    outDir: nonEmptyPath('output path'),
    /** Replace an existing output; without it an existing one is refused. */
    overwrite: z.boolean({ error: 'overwrite must be true or false' }).optional(),
    /** The base model folder, when it moved since the run (gguf and merged read it). */
    modelDir: nonEmptyPath('model folder').optional(),
  }),
  generate: z.strictObject({
    /** null: the base model without an adapter. */
    runId: z.string().min(1).nullable(),
    prompt: z.string({ error: 'prompt must be a string' }).max(20_000, { error: 'prompt is longer than 20000 characters' }),
    maxTokens: z.int({ error: 'maxTokens must be a whole number' }).min(1, { error: 'maxTokens must be at least 1' }).max(
      4096,
      { error: 'maxTokens must be at most 4096' },
    ),
    /** 0 or absent: greedy. With topP (default 1) and seed (default 0) for sampling. */
    temperature: z.number({ error: 'temperature must be a number' }).min(0, { error: 'temperature must be at least 0' }).max(100, { error: 'temperature must be at most 100' }).optional(),
    topP: z.number({ error: 'topP must be a number' }).gt(0, { error: 'topP must be above 0' }).max(1, { error: 'topP must be at most 1' }).optional(),
    seed: z.int({ error: 'seed must be a whole number' }).min(0, { error: 'seed must be at least 0' }).max(2 ** 32 - 1, { error: 'seed must be below 2^32' }).optional(),
    /** Set: every piece of text is also pushed as a 'generate-token' event with this id, and stopGenerate can stop it. */
    streamId: z.string({ error: 'streamId must be a string' }).min(1, { error: 'streamId is empty' }).max(100, { error: 'streamId is longer than 100 characters' }).optional(),
  }),
  stopGenerate: z.strictObject({ streamId: z.string().min(1, { error: 'streamId is empty' }) }),
  defaults: noParams,
} as const;

// ---------------------------------------------------------------------------------------------------------------
// Results.

/** The opened model (a Hugging Face folder or a GGUF file) as the Model step shows it. */
export interface ModelSummary extends ModelFacts {
  path: string;
}

export interface DatasetLineError {
  /** 1-based line number in the dataset file. */
  line: number;
  message: string;
}

export interface DatasetPreview {
  path: string;
  /** The first few samples, as the text the model will see. */
  samples: string[];
  /** Number of usable samples in the whole file. */
  count: number;
  errors: DatasetLineError[];
  /** Format, statistics, every bad row, the first rows tokenized with the trained part marked (data/preview.ts). */
  details?: DatasetDetails;
}

/** What a phone's agent says it can run on (its HELLO), for the Devices step's "Check agent". */
export interface AgentReport {
  abi: string;
  cpuThreads: number;
  /** e.g. ["cpu(neon x4)", "opencl(Adreno 740)"] or ["cpu(avx2 x8)", "opencl unavailable: ..."]. */
  backends: string[];
  opencl: boolean;
  /** CL_DEVICE_TYPE of the OpenCL device ('gpu', 'cpu' for a CPU driver like PoCL, ...); null without OpenCL. */
  openclDeviceType: string | null;
}

export interface RunSummary {
  runId: string;
  runDir: string;
  createdMs: number;
  /** run.json's status: 'running', 'finished', 'failed', 'stopped' (or 'unknown' for an unreadable field). */
  status: string;
  steps: number;
  finalLoss: number | null;
  evalLossBefore: number | null;
  evalLossAfter: number | null;
}

/** One past run as its run folder holds it: enough to show its results again and export or try its adapter. */
export interface RunDetails {
  runId: string;
  runDir: string;
  createdMs: number;
  status: string;
  error: string | null;
  modelDir: string | null;
  datasetPath: string | null;
  plan: TrainPlan | null;
  steps: number;
  losses: number[];
  tokPerSec: number | null;
  evalLossBefore: number | null;
  evalLossAfter: number | null;
  /** The held-out losses recomputed by onnxruntime from the exported adapter (null when not recorded). */
  heldOutLossOrt: { before: number; after: number } | null;
  samplesBefore: string[];
  samplesAfter: string[];
}

export interface Defaults {
  modelPath: string;
  datasetPath: string;
}

export interface MethodResults {
  listDevices: DeviceInfo[];
  probeDevice: AgentReport;
  startVirtualPhones: DeviceInfo[];
  inspectModel: ModelSummary;
  previewDataset: DatasetPreview;
  planTraining: PlanPreview;
  startTraining: { runId: string };
  stopTraining: void;
  pauseTraining: void;
  listRuns: RunSummary[];
  openRun: RunDetails;
  /** outDir: the absolute output path; files: what was written there, with sizes. */
  exportAdapter: { outDir: string; files: { name: string; bytes: number }[] };
  /** The continuation only (the prompt is not repeated). */
  generate: { text: string };
  stopGenerate: void;
  defaults: Defaults;
}

export type MethodName = keyof typeof methodParams;
export type ParamsOf<M extends MethodName> = z.output<(typeof methodParams)[M]>;
export type ResultOf<M extends MethodName> = MethodResults[M];

export const methodNames = Object.keys(methodParams) as MethodName[];

// ---------------------------------------------------------------------------------------------------------------
// Events: channel name -> payload. Pushed from the core to every UI; the UI never sends events.

export interface ApiEvents {
  'train-event': TrainEvent;
  'generate-token': GenerateTokenEvent;
  /** Every adb server's phones, pushed when one is plugged in, unplugged or changes state (adb track-devices). */
  devices: DeviceInfo[];
}
/** One piece of text of a streamed generate call (pieces in `index` order make the continuation). */
export interface GenerateTokenEvent {
  streamId: string;
  index: number;
  piece: string;
}
export type EventName = keyof ApiEvents;
/** One pushed event as it travels (IPC message, WebSocket frame). */
export type EventMessage = { [E in EventName]: { event: E; data: ApiEvents[E] } }[EventName];

// ---------------------------------------------------------------------------------------------------------------
// The service the core implements. Every method is async and takes its parameters already validated.

export interface ConfidantService {
  listDevices(): Promise<DeviceInfo[]>;
  probeDevice(params: ParamsOf<'probeDevice'>): Promise<AgentReport>;
  startVirtualPhones(params: ParamsOf<'startVirtualPhones'>): Promise<DeviceInfo[]>;
  inspectModel(params: ParamsOf<'inspectModel'>): Promise<ModelSummary>;
  previewDataset(params: ParamsOf<'previewDataset'>): Promise<DatasetPreview>;
  planTraining(params: ParamsOf<'planTraining'>): Promise<PlanPreview>;
  startTraining(params: ParamsOf<'startTraining'>): Promise<{ runId: string }>;
  stopTraining(params: ParamsOf<'stopTraining'>): Promise<void>;
  pauseTraining(params: ParamsOf<'pauseTraining'>): Promise<void>;
  listRuns(): Promise<RunSummary[]>;
  openRun(params: ParamsOf<'openRun'>): Promise<RunDetails>;
  exportAdapter(params: ParamsOf<'exportAdapter'>): Promise<ResultOf<'exportAdapter'>>;
  generate(params: ParamsOf<'generate'>): Promise<{ text: string }>;
  stopGenerate(params: ParamsOf<'stopGenerate'>): Promise<void>;
  defaults(): Promise<Defaults>;
  /** Subscribe to pushed events; returns the unsubscribe function. */
  onEvent(listener: (message: EventMessage) => void): () => void;
}

// Compile-time check that the hand-written interface matches the method map (a missing or mistyped method fails
// the type-check here, not at run time in the dispatcher).
type ServiceMethods = { [M in MethodName]: (params: ParamsOf<M>) => Promise<ResultOf<M>> };
const serviceMatchesContract = <T extends ServiceMethods>(): T | undefined => undefined;
void serviceMatchesContract<ConfidantService>;

// ---------------------------------------------------------------------------------------------------------------
// Wire envelope: the same shape for IPC replies and WebSocket replies.

export type ApiErrorCode = 'unknown-method' | 'bad-params' | 'failed' | 'disconnected' | 'forbidden';

export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
}

export type CallReply<R = unknown> = { ok: true; result: R } | { ok: false; error: ApiErrorBody };

/** A request on the WebSocket. */
export interface WsRequest {
  id: number | string;
  method: string;
  params?: unknown;
}
/** A reply on the WebSocket. */
export type WsReply = { id: number | string; result: unknown } | { id: number | string | null; error: ApiErrorBody };

/** What the Electron preload exposes as `window.confidant` (untyped at the bridge; api.ts adds the types). */
export interface ConfidantBridge {
  call(method: string, params: unknown): Promise<CallReply>;
  onEvent(listener: (message: EventMessage) => void): () => void;
}

/** IPC channel names. preload.cts repeats them as literals (a sandboxed preload cannot load this module). */
export const IPC_CALL_CHANNEL = 'confidant:call';
export const IPC_EVENT_CHANNEL = 'confidant:event';

// ---------------------------------------------------------------------------------------------------------------
// Validation and dispatch.

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function isMethodName(method: unknown): method is MethodName {
  return typeof method === 'string' && Object.prototype.hasOwnProperty.call(methodParams, method);
}

/**
 * Checks a call from an untrusted UI. Returns the parsed parameters, or throws an ApiError whose message names the
 * method and every offending field, e.g. `startVirtualPhones: count: count must be a whole number`.
 * Missing params mean `{}` (so parameterless methods can be called with nothing).
 */
export function validateCall<M extends MethodName>(method: M, params: unknown): ParamsOf<M>;
export function validateCall(method: string, params: unknown): ParamsOf<MethodName>;
export function validateCall(method: string, params: unknown): ParamsOf<MethodName> {
  if (!isMethodName(method)) {
    const shown = typeof method === 'string' ? `'${method.slice(0, 80)}'` : `a ${typeof method}`;
    throw new ApiError('unknown-method', `unknown method ${shown}; known methods: ${methodNames.join(', ')}`);
  }
  const parsed = methodParams[method].safeParse(params === undefined ? {} : params);
  if (!parsed.success) {
    const details = parsed.error.issues
      .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
      .join('; ');
    throw new ApiError('bad-params', `${method}: ${details}`);
  }
  return parsed.data;
}

/** Validates, calls the service, and wraps the outcome; never throws. Shared by the IPC bridge and the server. */
export async function dispatchCall(service: ConfidantService, method: string, params: unknown): Promise<CallReply> {
  try {
    const valid = validateCall(method, params);
    const fn = service[method as MethodName] as ((p: unknown) => Promise<unknown>) | undefined;
    if (typeof fn !== 'function') throw new ApiError('failed', `${method}: the core does not implement this method`);
    const result = await fn.call(service, valid);
    return { ok: true, result: result === undefined ? null : result };
  } catch (err) {
    if (err instanceof ApiError) return { ok: false, error: { code: err.code, message: err.message } };
    const message = err instanceof Error ? err.message : String(err);
    // Service errors are written for people (see STYLE.md); pass them through unchanged, without the stack.
    return { ok: false, error: { code: 'failed', message } };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Content-Security-Policy for the renderer, whichever way it is loaded (Electron file URL or the headless server).
// uPlot and React set styles through the CSSOM, which style-src does not govern, so no 'unsafe-inline' is needed.

const cspCommon = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self' ws://127.0.0.1:*",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
];
/** For the <meta> tag in renderer/index.html (frame-ancestors is not allowed in a meta tag). */
export const RENDERER_CSP_META = cspCommon.join('; ');
/** For the Content-Security-Policy response header (Electron session and the headless server). */
export const RENDERER_CSP_HEADER = [...cspCommon, "frame-ancestors 'none'"].join('; ');
