// Typed payloads of every command of docs/protocol.md (request and reply), with their encoders and decoders.
// Not framing or I/O (wire.ts, frame-stream.ts, agent-client.ts); field meaning is checked by the agent, not here.
import {
  type NamedTensor,
  readTensor,
  readTensorList,
  type Tensor,
  writeOptionalTensor,
  writeTensor,
  writeTensorList,
} from './tensor.js';
import { ByteReader, ByteWriter, COMMAND_CODES, type CommandName, ProtocolError } from './wire.js';

export {
  type Dtype,
  elementCount,
  makeTensor,
  type NamedTensor,
  type Tensor,
  type TensorData,
  tensorToF16,
  tensorToF32,
} from './tensor.js';

// ---- flag bits (docs/protocol.md "Field details") ----
export const LOAD_STAGE_FLAG_TRAIN_A = 1 << 0; // clear: A frozen (LoRA-FA)
export const LOAD_STAGE_FLAG_RECOMPUTE = 1 << 1; // keep only layer inputs, recompute the rest in BACKWARD
export const TARGET_MODULE_BITS = {
  q_proj: 1 << 0,
  k_proj: 1 << 1,
  v_proj: 1 << 2,
  o_proj: 1 << 3,
  gate_proj: 1 << 4,
  up_proj: 1 << 5,
  down_proj: 1 << 6,
} as const;
export const FORWARD_FLAG_KEEP_ACTIVATIONS = 1 << 0;
export const FORWARD_FLAG_RETURN_LOGITS = 1 << 1;
export const GET_LORA_FLAG_INCLUDE_GRADS = 1 << 0;
/** GET_LORA adds "<name>.adam_m" / "<name>.adam_v" (AdamW moments) of every trainable tensor: checkpoints. */
export const GET_LORA_FLAG_INCLUDE_MOMENTS = 1 << 1;
/**
 * FORWARD replies hidden as f16 and the micro-batch's BACKWARD answers grad_input as f16: half the relay bytes. The
 * same bit in ZO_FORWARD's flags has it answer its hidden state as f16.
 */
export const FORWARD_FLAG_RELAY_F16 = 1 << 2;
export const FORWARD_OUTPUT_HIDDEN = 0;
export const FORWARD_OUTPUT_LOSS = 1;
/** ZO_FORWARD reply output_kind 1: one loss sum and one weight sum per perturbed copy. */
export const ZO_FORWARD_OUTPUT_COPY_LOSSES = 1;

// ---- payload types ----
export type Empty = Record<string, never>;

export interface HelloRequest {
  protocolVersion: number;
  token: string;
}
export interface HelloReply {
  agentVersion: string;
  protocolVersion: number;
  abi: string;
  cpuThreads: number;
  memoryBudgetBytes: number;
  backends: string; // comma-separated `name` or `name(detail)` entries, e.g. "cpu(neon x4),opencl(Adreno 740)"
  /**
   * The OpenCL device's CL_DEVICE_TYPE: 'gpu', 'cpu' (e.g. PoCL, on the CPU backend's cores), 'accelerator',
   * 'other', or '' without OpenCL. Absent from an agent built before the field (its reply ends after backends).
   */
  openclDeviceType?: string;
}
export interface LoadStageRequest {
  path: string;
  loraRank: number;
  loraAlpha: number;
  targetMask: number;
  flags: number;
}
export interface LoadStageReply {
  layerStart: number;
  layerEnd: number; // half-open: layers [layerStart, layerEnd)
  stageFlags: number;
  weightBytes: number;
  loraParamCount: number;
}
export interface TensorList {
  tensors: NamedTensor[];
}
export interface ForwardRequest {
  microId: number;
  flags: number;
  input: Tensor; // i32 [B, T] tokens on the first stage, f32 (or f16) [B, T, hidden] otherwise
  targets?: Tensor; // i32 [B, T], last stage only, together with mask
  mask?: Tensor; // f32 [B, T]
}
export type ForwardReply =
  | { outputKind: typeof FORWARD_OUTPUT_HIDDEN; hidden: Tensor }
  | { outputKind: typeof FORWARD_OUTPUT_LOSS; lossSum: number; weightSum: number; logits?: Tensor };
export interface BackwardRequest {
  microId: number;
  lossScale: number;
  gradOutput?: Tensor; // absent on the last stage
}
export interface BackwardReply {
  gradInput?: Tensor; // absent on the first stage
}
export interface GradNormReply {
  sumSquares: number;
}
export interface OptimStepRequest {
  step: number; // 1-based
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  gradScale: number;
}
export interface GetLoraRequest {
  flags: number;
}
/** Cumulative since the agent started, except the memory and the temperature (now). */
export interface StatsReply {
  rssBytes: number;
  peakRssBytes: number;
  busyUs: number; // FORWARD/BACKWARD/OPTIM_STEP/ZO_FORWARD/ZO_STEP wall time
  forwardCount: number;
  backwardCount: number;
  bytesIn: number;
  bytesOut: number;
  // The fields below were added within version 1: an agent built before them sends none of them.
  /** Of busyUs, the time the agent's thread computed on the primary (CPU) backend. */
  primaryBusyUs?: number;
  /** The secondary (OpenCL) backend's shares of split layers, issue to completion; overlaps primaryBusyUs. */
  secondaryBusyUs?: number;
  /** The hottest CPU/GPU thermal zone (else the hottest other one), absent when none could be read. */
  temperatureMillicelsius?: number;
  /** That zone's type, e.g. "cpu-1-4-usr"; present together with temperatureMillicelsius. */
  temperatureZone?: string;
}
/**
 * P-RGE batched forward: the batch holds 2 * queries copies (copy-major), copy 2j at +eps, 2j+1 at -eps of the
 * step's query firstQuery + j, so a step's queries may be spread over several requests.
 */
export interface ZoForwardRequest {
  seed: number; // u64, kept below 2^53 by the host
  step: number; // u32
  queries: number; // u32, >= 1
  firstQuery: number; // u32, firstQuery + queries <= 1024
  eps: number; // f32
  flags: number; // u32: only FORWARD_FLAG_RELAY_F16 (the hidden reply in f16)
  input: Tensor; // i32 [B, T] tokens on the first stage, f32 or f16 [B, T, hidden] otherwise; B % (2 * queries) == 0
  targets?: Tensor; // i32 [B, T], last stage only, together with mask
  mask?: Tensor; // f32 [B, T]
}
export type ZoForwardReply =
  | { outputKind: typeof FORWARD_OUTPUT_HIDDEN; hidden: Tensor }
  | { outputKind: typeof ZO_FORWARD_OUTPUT_COPY_LOSSES; copyLossSums: number[]; copyWeightSums: number[] };
export interface ZoStepRequest {
  seed: number; // u64, the ZO_FORWARD seed
  step: number; // u32, the ZO_FORWARD step
  lr: number; // f32
  g: number[]; // f32 per query: the projected gradients
}
export interface ProfileRequest {
  batch: number;
  seqLen: number;
  reps: number;
}
export interface ProfileReply {
  profileJson: string; // docs/protocol.md "PROFILE reply"; parse with parseProfileResult (profile.ts)
}
export interface LayerSplit {
  gpuKvGroups: number; // KV groups [0, gpuKvGroups) of the layer's attention run on OpenCL
  gpuMlpCols: number; // MLP intermediate columns [0, gpuMlpCols) run on OpenCL; a multiple of 32
}
export interface SetSplitRequest {
  layers: LayerSplit[]; // one per local layer of the stage, in layer order
}
export interface ErrorReply {
  errorCode: number;
  message: string;
}

export interface Requests {
  HELLO: HelloRequest;
  LOAD_STAGE: LoadStageRequest;
  SET_LORA: TensorList;
  FORWARD: ForwardRequest;
  BACKWARD: BackwardRequest;
  GRAD_NORM: Empty;
  OPTIM_STEP: OptimStepRequest;
  GET_LORA: GetLoraRequest;
  STATS: Empty;
  SHUTDOWN: Empty;
  ZERO_GRAD: Empty;
  ZO_FORWARD: ZoForwardRequest;
  ZO_STEP: ZoStepRequest;
  PROFILE: ProfileRequest;
  SET_SPLIT: SetSplitRequest;
}
export interface Replies {
  HELLO: HelloReply;
  LOAD_STAGE: LoadStageReply;
  SET_LORA: Empty;
  FORWARD: ForwardReply;
  BACKWARD: BackwardReply;
  GRAD_NORM: GradNormReply;
  OPTIM_STEP: Empty;
  GET_LORA: TensorList;
  STATS: StatsReply;
  SHUTDOWN: Empty;
  ZERO_GRAD: Empty;
  ZO_FORWARD: ZoForwardReply;
  ZO_STEP: Empty;
  PROFILE: ProfileReply;
  SET_SPLIT: Empty;
}

// ---- per-command codecs ----

interface Codec<Req, Rep> {
  writeRequest(w: ByteWriter, v: Req): void;
  readRequest(r: ByteReader): Req;
  writeReply(w: ByteWriter, v: Rep): void;
  readReply(r: ByteReader): Rep;
}

const empty = {
  write(): void {},
  read(): Empty {
    return {};
  },
};

// f32 / f64 arrays (docs/protocol.md "Payload primitives"): u32 count, then count values.
function writeF32Array(w: ByteWriter, values: readonly number[], what: string): void {
  if (!Array.isArray(values)) throw new ProtocolError(`${what} must be an array of numbers`);
  w.u32(values.length, `${what} count`);
  values.forEach((v, i) => w.f32(v, `${what}[${i}]`));
}
function writeF64Array(w: ByteWriter, values: readonly number[], what: string): void {
  if (!Array.isArray(values)) throw new ProtocolError(`${what} must be an array of numbers`);
  w.u32(values.length, `${what} count`);
  values.forEach((v, i) => w.f64(v, `${what}[${i}]`));
}
function readArray<T>(r: ByteReader, what: string, elementBytes: number, readOne: (i: number) => T): T[] {
  const n = r.u32(`${what} count`);
  // Checked before allocating, so a corrupt count cannot ask for more than the payload holds.
  if (n * elementBytes > r.remainingBytes) {
    throw new ProtocolError(
      `${what}: ${n} entries need ${n * elementBytes} bytes, the payload has ${r.remainingBytes} left`,
    );
  }
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(readOne(i));
  return out;
}
const readF32Array = (r: ByteReader, what: string) => readArray(r, what, 4, (i) => r.f32(`${what}[${i}]`));
const readF64Array = (r: ByteReader, what: string) => readArray(r, what, 8, (i) => r.f64(`${what}[${i}]`));

const CODECS: { [C in CommandName]: Codec<Requests[C], Replies[C]> } = {
  HELLO: {
    writeRequest(w, v) {
      w.u32(v.protocolVersion, 'protocol_version').string(v.token, 'token');
    },
    readRequest(r) {
      return { protocolVersion: r.u32('protocol_version'), token: r.string('token') };
    },
    writeReply(w, v) {
      w.string(v.agentVersion, 'agent_version')
        .u32(v.protocolVersion, 'protocol_version')
        .string(v.abi, 'abi')
        .u32(v.cpuThreads, 'cpu_threads')
        .u64(v.memoryBudgetBytes, 'memory_budget_bytes')
        .string(v.backends, 'backends');
      if (v.openclDeviceType !== undefined) w.string(v.openclDeviceType, 'opencl_device_type');
    },
    readReply(r) {
      const out: HelloReply = {
        agentVersion: r.string('agent_version'),
        protocolVersion: r.u32('protocol_version'),
        abi: r.string('abi'),
        cpuThreads: r.u32('cpu_threads'),
        memoryBudgetBytes: r.u64('memory_budget_bytes'),
        backends: r.string('backends'),
      };
      // An older agent's reply ends here (docs/protocol.md "Fields added within version 1").
      if (r.remainingBytes > 0) out.openclDeviceType = r.string('opencl_device_type');
      return out;
    },
  },
  LOAD_STAGE: {
    writeRequest(w, v) {
      w.string(v.path, 'path')
        .u32(v.loraRank, 'lora_rank')
        .f32(v.loraAlpha, 'lora_alpha')
        .u32(v.targetMask, 'target_mask')
        .u32(v.flags, 'flags');
    },
    readRequest(r) {
      return {
        path: r.string('path'),
        loraRank: r.u32('lora_rank'),
        loraAlpha: r.f32('lora_alpha'),
        targetMask: r.u32('target_mask'),
        flags: r.u32('flags'),
      };
    },
    writeReply(w, v) {
      w.u32(v.layerStart, 'layer_start')
        .u32(v.layerEnd, 'layer_end')
        .u32(v.stageFlags, 'stage_flags')
        .u64(v.weightBytes, 'weight_bytes')
        .u64(v.loraParamCount, 'lora_param_count');
    },
    readReply(r) {
      return {
        layerStart: r.u32('layer_start'),
        layerEnd: r.u32('layer_end'),
        stageFlags: r.u32('stage_flags'),
        weightBytes: r.u64('weight_bytes'),
        loraParamCount: r.u64('lora_param_count'),
      };
    },
  },
  SET_LORA: {
    writeRequest: (w, v) => writeTensorList(w, v.tensors, 'tensors'),
    readRequest: (r) => ({ tensors: readTensorList(r, 'tensors') }),
    writeReply: empty.write,
    readReply: empty.read,
  },
  FORWARD: {
    writeRequest(w, v) {
      if ((v.targets === undefined) !== (v.mask === undefined)) {
        throw new ProtocolError('FORWARD request: targets and mask go together (last stage) or not at all');
      }
      w.u32(v.microId, 'micro_id').u32(v.flags, 'flags');
      writeTensor(w, v.input, 'input');
      w.u8(v.targets ? 1 : 0, 'has_targets');
      if (v.targets && v.mask) {
        writeTensor(w, v.targets, 'targets');
        writeTensor(w, v.mask, 'mask');
      }
    },
    readRequest(r) {
      const out: ForwardRequest = { microId: r.u32('micro_id'), flags: r.u32('flags'), input: readTensor(r, 'input') };
      if (r.bool('has_targets')) {
        out.targets = readTensor(r, 'targets');
        out.mask = readTensor(r, 'mask');
      }
      return out;
    },
    writeReply(w, v) {
      w.u8(v.outputKind, 'output_kind');
      if (v.outputKind === FORWARD_OUTPUT_HIDDEN) {
        writeTensor(w, v.hidden, 'hidden');
      } else if (v.outputKind === FORWARD_OUTPUT_LOSS) {
        w.f64(v.lossSum, 'loss_sum').f64(v.weightSum, 'weight_sum');
        writeOptionalTensor(w, v.logits, 'has_logits', 'logits');
      } else {
        throw new ProtocolError(`FORWARD reply: output_kind ${String((v as { outputKind: unknown }).outputKind)}`);
      }
    },
    readReply(r): ForwardReply {
      const kind = r.u8('output_kind');
      if (kind === FORWARD_OUTPUT_HIDDEN) return { outputKind: kind, hidden: readTensor(r, 'hidden') };
      if (kind !== FORWARD_OUTPUT_LOSS) {
        throw new ProtocolError(`FORWARD reply: output_kind ${kind}, expected 0 (hidden) or 1 (loss)`);
      }
      const out: ForwardReply = { outputKind: kind, lossSum: r.f64('loss_sum'), weightSum: r.f64('weight_sum') };
      if (r.bool('has_logits')) out.logits = readTensor(r, 'logits');
      return out;
    },
  },
  BACKWARD: {
    writeRequest(w, v) {
      w.u32(v.microId, 'micro_id').f32(v.lossScale, 'loss_scale');
      writeOptionalTensor(w, v.gradOutput, 'has_grad', 'grad_output');
    },
    readRequest(r) {
      const out: BackwardRequest = { microId: r.u32('micro_id'), lossScale: r.f32('loss_scale') };
      if (r.bool('has_grad')) out.gradOutput = readTensor(r, 'grad_output');
      return out;
    },
    writeReply: (w, v) => writeOptionalTensor(w, v.gradInput, 'has_grad_input', 'grad_input'),
    readReply(r) {
      const out: BackwardReply = {};
      if (r.bool('has_grad_input')) out.gradInput = readTensor(r, 'grad_input');
      return out;
    },
  },
  GRAD_NORM: {
    writeRequest: empty.write,
    readRequest: empty.read,
    writeReply: (w, v) => void w.f64(v.sumSquares, 'sum_squares'),
    readReply: (r) => ({ sumSquares: r.f64('sum_squares') }),
  },
  OPTIM_STEP: {
    writeRequest(w, v) {
      w.u32(v.step, 'step')
        .f32(v.lr, 'lr')
        .f32(v.beta1, 'beta1')
        .f32(v.beta2, 'beta2')
        .f32(v.eps, 'eps')
        .f32(v.weightDecay, 'weight_decay')
        .f32(v.gradScale, 'grad_scale');
    },
    readRequest(r) {
      return {
        step: r.u32('step'),
        lr: r.f32('lr'),
        beta1: r.f32('beta1'),
        beta2: r.f32('beta2'),
        eps: r.f32('eps'),
        weightDecay: r.f32('weight_decay'),
        gradScale: r.f32('grad_scale'),
      };
    },
    writeReply: empty.write,
    readReply: empty.read,
  },
  GET_LORA: {
    writeRequest: (w, v) => void w.u32(v.flags, 'flags'),
    readRequest: (r) => ({ flags: r.u32('flags') }),
    writeReply: (w, v) => writeTensorList(w, v.tensors, 'tensors'),
    readReply: (r) => ({ tensors: readTensorList(r, 'tensors') }),
  },
  STATS: {
    writeRequest: empty.write,
    readRequest: empty.read,
    writeReply(w, v) {
      w.u64(v.rssBytes, 'rss_bytes')
        .u64(v.peakRssBytes, 'peak_rss_bytes')
        .u64(v.busyUs, 'busy_us')
        .u64(v.forwardCount, 'forward_count')
        .u64(v.backwardCount, 'backward_count')
        .u64(v.bytesIn, 'bytes_in')
        .u64(v.bytesOut, 'bytes_out');
      // The fields added within version 1 come all together (temperature optional), or not at all (older layout).
      const extended = [v.primaryBusyUs, v.secondaryBusyUs, v.temperatureMillicelsius, v.temperatureZone].some((x) => x !== undefined);
      if (!extended) return;
      if (v.primaryBusyUs === undefined || v.secondaryBusyUs === undefined) {
        throw new ProtocolError('STATS reply: primaryBusyUs and secondaryBusyUs go together, and with the temperature');
      }
      if ((v.temperatureMillicelsius === undefined) !== (v.temperatureZone === undefined)) {
        throw new ProtocolError('STATS reply: temperatureMillicelsius and temperatureZone go together or not at all');
      }
      w.u64(v.primaryBusyUs, 'primary_busy_us').u64(v.secondaryBusyUs, 'secondary_busy_us');
      w.u8(v.temperatureMillicelsius === undefined ? 0 : 1, 'has_temperature');
      if (v.temperatureMillicelsius !== undefined && v.temperatureZone !== undefined) {
        w.i32(v.temperatureMillicelsius, 'temperature_millicelsius').string(v.temperatureZone, 'temperature_zone');
      }
    },
    readReply(r) {
      const out: StatsReply = {
        rssBytes: r.u64('rss_bytes'),
        peakRssBytes: r.u64('peak_rss_bytes'),
        busyUs: r.u64('busy_us'),
        forwardCount: r.u64('forward_count'),
        backwardCount: r.u64('backward_count'),
        bytesIn: r.u64('bytes_in'),
        bytesOut: r.u64('bytes_out'),
      };
      if (r.remainingBytes === 0) return out; // an older agent's layout (docs/protocol.md "STATS")
      out.primaryBusyUs = r.u64('primary_busy_us');
      out.secondaryBusyUs = r.u64('secondary_busy_us');
      if (r.bool('has_temperature')) {
        out.temperatureMillicelsius = r.i32('temperature_millicelsius');
        out.temperatureZone = r.string('temperature_zone');
      }
      return out;
    },
  },
  SHUTDOWN: { writeRequest: empty.write, readRequest: empty.read, writeReply: empty.write, readReply: empty.read },
  ZERO_GRAD: { writeRequest: empty.write, readRequest: empty.read, writeReply: empty.write, readReply: empty.read },
  ZO_FORWARD: {
    writeRequest(w, v) {
      if ((v.targets === undefined) !== (v.mask === undefined)) {
        throw new ProtocolError('ZO_FORWARD request: targets and mask go together (last stage) or not at all');
      }
      w.u64(v.seed, 'seed').u32(v.step, 'step').u32(v.queries, 'queries').u32(v.firstQuery, 'first_query');
      w.f32(v.eps, 'eps').u32(v.flags, 'flags');
      writeTensor(w, v.input, 'input');
      w.u8(v.targets ? 1 : 0, 'has_targets');
      if (v.targets && v.mask) {
        writeTensor(w, v.targets, 'targets');
        writeTensor(w, v.mask, 'mask');
      }
    },
    readRequest(r) {
      const out: ZoForwardRequest = {
        seed: r.u64('seed'),
        step: r.u32('step'),
        queries: r.u32('queries'),
        firstQuery: r.u32('first_query'),
        eps: r.f32('eps'),
        flags: r.u32('flags'),
        input: readTensor(r, 'input'),
      };
      if (r.bool('has_targets')) {
        out.targets = readTensor(r, 'targets');
        out.mask = readTensor(r, 'mask');
      }
      return out;
    },
    writeReply(w, v) {
      w.u8(v.outputKind, 'output_kind');
      if (v.outputKind === FORWARD_OUTPUT_HIDDEN) {
        writeTensor(w, v.hidden, 'hidden');
      } else if (v.outputKind === ZO_FORWARD_OUTPUT_COPY_LOSSES) {
        if (v.copyLossSums.length !== v.copyWeightSums.length) {
          throw new ProtocolError(
            `ZO_FORWARD reply: ${v.copyLossSums.length} copy_loss_sums but ${v.copyWeightSums.length} copy_weight_sums`,
          );
        }
        writeF64Array(w, v.copyLossSums, 'copy_loss_sums');
        writeF64Array(w, v.copyWeightSums, 'copy_weight_sums');
      } else {
        throw new ProtocolError(`ZO_FORWARD reply: output_kind ${String((v as { outputKind: unknown }).outputKind)}`);
      }
    },
    readReply(r): ZoForwardReply {
      const kind = r.u8('output_kind');
      if (kind === FORWARD_OUTPUT_HIDDEN) return { outputKind: kind, hidden: readTensor(r, 'hidden') };
      if (kind !== ZO_FORWARD_OUTPUT_COPY_LOSSES) {
        throw new ProtocolError(`ZO_FORWARD reply: output_kind ${kind}, expected 0 (hidden) or 1 (copy losses)`);
      }
      const copyLossSums = readF64Array(r, 'copy_loss_sums');
      const copyWeightSums = readF64Array(r, 'copy_weight_sums');
      if (copyLossSums.length !== copyWeightSums.length) {
        throw new ProtocolError(
          `ZO_FORWARD reply: ${copyLossSums.length} copy_loss_sums but ${copyWeightSums.length} copy_weight_sums ` +
            '(one of each per copy)',
        );
      }
      return { outputKind: kind, copyLossSums, copyWeightSums };
    },
  },
  ZO_STEP: {
    writeRequest(w, v) {
      w.u64(v.seed, 'seed').u32(v.step, 'step').f32(v.lr, 'lr');
      writeF32Array(w, v.g, 'g');
    },
    readRequest(r) {
      return { seed: r.u64('seed'), step: r.u32('step'), lr: r.f32('lr'), g: readF32Array(r, 'g') };
    },
    writeReply: empty.write,
    readReply: empty.read,
  },
  PROFILE: {
    writeRequest(w, v) {
      w.u32(v.batch, 'batch').u32(v.seqLen, 'seq_len').u32(v.reps, 'reps');
    },
    readRequest(r) {
      return { batch: r.u32('batch'), seqLen: r.u32('seq_len'), reps: r.u32('reps') };
    },
    writeReply: (w, v) => void w.string(v.profileJson, 'profile_json'),
    readReply: (r) => ({ profileJson: r.string('profile_json') }),
  },
  SET_SPLIT: {
    writeRequest(w, v) {
      if (!Array.isArray(v.layers)) throw new ProtocolError('SET_SPLIT request: layers must be an array');
      w.u32(v.layers.length, 'layers count');
      v.layers.forEach((l, i) => {
        w.u32(l.gpuKvGroups, `layers[${i}].gpu_kv_groups`).u32(l.gpuMlpCols, `layers[${i}].gpu_mlp_cols`);
      });
    },
    readRequest(r) {
      const layers = readArray(r, 'layers', 8, (i) => ({
        gpuKvGroups: r.u32(`layers[${i}].gpu_kv_groups`),
        gpuMlpCols: r.u32(`layers[${i}].gpu_mlp_cols`),
      }));
      return { layers };
    },
    writeReply: empty.write,
    readReply: empty.read,
  },
};

function codec<C extends CommandName>(command: C): Codec<Requests[C], Replies[C]> {
  const c = CODECS[command];
  if (!c) throw new ProtocolError(`unknown command ${String(command)}`);
  return c as Codec<Requests[C], Replies[C]>;
}

/** Request payload as byte chunks (large tensor data by reference); see ByteWriter. */
export function encodeRequest<C extends CommandName>(command: C, fields: Requests[C]): Uint8Array[] {
  const w = new ByteWriter();
  codec(command).writeRequest(w, fields);
  return w.chunks();
}

export function encodeReply<C extends CommandName>(command: C, fields: Replies[C]): Uint8Array[] {
  const w = new ByteWriter();
  codec(command).writeReply(w, fields);
  return w.chunks();
}

export function encodeError(fields: ErrorReply): Uint8Array[] {
  return new ByteWriter().u32(fields.errorCode, 'error_code').string(fields.message, 'message').chunks();
}

/** Decodes a whole request payload; a short payload or bytes left over are a ProtocolError naming the field. */
export function decodeRequest<C extends CommandName>(command: C, payload: Uint8Array): Requests[C] {
  const r = new ByteReader(payload, `${command} request`);
  const out = codec(command).readRequest(r);
  r.end();
  return out;
}

export function decodeReply<C extends CommandName>(command: C, payload: Uint8Array): Replies[C] {
  const r = new ByteReader(payload, `${command} reply`);
  const out = codec(command).readReply(r);
  r.end();
  return out;
}

export function decodeError(payload: Uint8Array): ErrorReply {
  const r = new ByteReader(payload, 'ERROR reply');
  const out = { errorCode: r.u32('error_code'), message: r.string('message') };
  r.end();
  return out;
}

export function commandCode(command: CommandName): number {
  return COMMAND_CODES[command];
}
