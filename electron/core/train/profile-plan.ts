// The agent I/O of planning from measurements: PROFILE every deployed stage, apply each device's CPU/OpenCL head
// split (SET_SPLIT) and time each link (STATS and GET_LORA round trips). Not the arithmetic that turns the replies into the
// planner's profiles and decides splits and re-plans (measured-plan.ts), nor what run.json records (plan-record.ts).
import type { ModelConfig } from '../model/hf-config.js';
import type { ProfileResult } from '../protocol/profile.js';
import { FORWARD_FLAG_RELAY_F16, type ForwardRequest, type LayerSplit, type NamedTensor, type ProfileRequest } from '../protocol/messages.js';
import type { Tensor } from '../protocol/tensor.js';
import type { OpenclDeviceType } from '../protocol/agent-client.js';
import type { RelayDtype } from '../api/types.js';
import { chooseHeadSplit, kvGroupStepFor, type HeadSplit } from '../plan/head-split.js';
import { opBatchSize } from '../plan/zo-ops.js';
import { isGroupedFormat, QUANT_GROUP, type WeightFormat } from '../model/quantize.js';
import { headSplitDecision, profileToDeviceProfile, splitEntries, type DeviceFacts, type StageMeasurement } from './measured-plan.js';

/**
 * PROFILE repetitions (medians): 5 keeps profiling a few forward+backward passes per layer and backend, and a
 * median of 5 shrugs off two slow runs (3 let one busy second of a shared machine through: 16.5 -> 23.5 ms).
 */
export const PROFILE_REPS = 5;
/** The planner sizes a boundary tensor as f32 (partition.ts boundaryMs); a relayed value is this many bytes. */
const PLANNER_BYTES_PER_VALUE = 4;
const RELAY_BYTES_PER_VALUE: Record<RelayDtype, number> = { f16: 2, f32: 4 };
const LINK_PROBES = 3;

/** A device's link as the planner prices it. */
export interface LinkMeasurement {
  /** Relay throughput in the planner's units (a boundary value counted as 4 bytes; f16 relays send 2). */
  bytesPerSec?: number;
  /** The same in bytes on the wire per second. */
  wireBytesPerSec?: number;
  /** Round trip of an empty request (STATS), ms. */
  emptyRoundTripMs: number;
}

async function bestMs(run: () => Promise<unknown>): Promise<number> {
  let ms = Infinity;
  for (let i = 0; i < LINK_PROBES; i++) {
    const t0 = performance.now();
    await run();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

/**
 * One device's tunnel: the best of a few STATS round trips (no payload, no compute) is what any request pays;
 * GET_LORA moves the stage's adapter (a few hundred KiB to MiB, the size of a relayed activation) agent -> host with
 * no compute, so its best round trip less that is the transfer at the link's speed.
 */
export async function measureLink(client: { getLora(): Promise<NamedTensor[]>; stats(): Promise<unknown> }, relay: RelayDtype): Promise<LinkMeasurement> {
  const emptyRoundTripMs = await bestMs(() => client.stats());
  let bytes = 0;
  const loraMs = await bestMs(async () => (bytes = (await client.getLora()).reduce((n, t) => n + t.tensor.data.byteLength, 0)));
  const transferMs = loraMs - emptyRoundTripMs;
  if (!(bytes > 0 && transferMs > 0)) return { emptyRoundTripMs };
  const wireBytesPerSec = bytes / (transferMs / 1000);
  return { bytesPerSec: wireBytesPerSec * (PLANNER_BYTES_PER_VALUE / RELAY_BYTES_PER_VALUE[relay]), wireBytesPerSec, emptyRoundTripMs };
}

/** The micro-batch a stage reads in training, as zeros: what the overhead probe sends. */
function probeForward(c: ModelConfig, st: { layerStart: number; layerEnd: number }, b: number, t: number, relay: RelayDtype): ForwardRequest {
  const n = b * t;
  const input: Tensor = st.layerStart === 0
    ? { dtype: 'i32', dims: [b, t], data: new Int32Array(n) }
    : relay === 'f16'
      ? { dtype: 'f16', dims: [b, t, c.hiddenSize], data: new Uint16Array(n * c.hiddenSize) }
      : { dtype: 'f32', dims: [b, t, c.hiddenSize], data: new Float32Array(n * c.hiddenSize) };
  const last = st.layerEnd === c.numLayers;
  return {
    microId: OVERHEAD_PROBE_MICRO_ID,
    flags: relay === 'f16' ? FORWARD_FLAG_RELAY_F16 : 0,
    input,
    ...(last ? { targets: { dtype: 'i32', dims: [b, t], data: new Int32Array(n) }, mask: { dtype: 'f32', dims: [b, t], data: new Float32Array(n).fill(1) } } : {}),
  };
}
/** Any id: a forward that keeps nothing stores nothing under it. */
const OVERHEAD_PROBE_MICRO_ID = 0;

/**
 * Overhead probes per stage. Their median is the typical op's overhead, which is what a median step pays; the best
 * of a few (used before) was 0.3-0.4 ms on the demo where training's ops paid 1-2 ms.
 */
export const OVERHEAD_PROBES = 7;

/**
 * What one forward or backward costs beyond the agent's compute and the link transfer of its tensors: the host's
 * encoding, checksums and promise hand-offs, the adb hops, the agent's reading and writing. Measured on a real
 * FORWARD of the plan's micro-batch that keeps nothing (so no state changes): host wall time less the agent's own
 * busy time for it (STATS before and after) less its tensors at the measured wire speed; the median of a few. On a
 * tiny model this is most of a step (stories260K: ~1 ms per op against ~2.5 ms of compute).
 */
export async function measureOpOverheadMs(
  c: ModelConfig, st: { layerStart: number; layerEnd: number; client: Pick<ProfilableStage['client'], 'forward' | 'stats'> },
  b: number, t: number, relay: RelayDtype, link: LinkMeasurement,
): Promise<number> {
  const req = probeForward(c, st, b, t, relay);
  const last = st.layerEnd === c.numLayers;
  const outBytes = last ? 0 : b * t * c.hiddenSize * RELAY_BYTES_PER_VALUE[relay];
  const transferMs = link.wireBytesPerSec ? ((req.input.data.byteLength + outBytes) / link.wireBytesPerSec) * 1000 : 0;
  const overheadsMs: number[] = [];
  for (let i = 0; i < OVERHEAD_PROBES; i++) {
    const before = (await st.client.stats()).busyUs;
    const t0 = performance.now();
    await st.client.forward(req);
    const wallMs = performance.now() - t0;
    const busyMs = ((await st.client.stats()).busyUs - before) / 1000;
    overheadsMs.push(wallMs - busyMs - transferMs);
  }
  overheadsMs.sort((x, y) => x - y);
  return Math.max(0, overheadsMs[OVERHEAD_PROBES >> 1]!);
}

export interface ProfilableStage {
  serial: string;
  layerStart: number;
  layerEnd: number;
  client: {
    profile(req: ProfileRequest, opts?: { timeoutMs?: number }): Promise<ProfileResult>;
    setSplit(splits: LayerSplit[]): Promise<void>;
    getLora(): Promise<NamedTensor[]>;
    stats(): Promise<{ rssBytes: number; busyUs: number }>;
    forward(req: ForwardRequest): Promise<unknown>;
    readonly capabilities: { backends: string[]; opencl: boolean; openclDeviceType: OpenclDeviceType | null };
  };
}

/**
 * PROFILEs every stage, chooses its head split and applies it where the agent has OpenCL, and measures its link.
 * Profiles at the plan's micro-batch shape (in zo mode its 2q copies, as ZO_FORWARD runs them; PROFILE's forward
 * keeps activations, which zo does not). All stages profile at once, as they compute in training: phones do not
 * slow each other, but virtual phones share the host's caches and memory bandwidth, and a profile taken alone
 * timed ops 1.1x faster than training ran them. Links are then timed one stage at a time.
 */
export async function measureStages(
  c: ModelConfig, stages: ProfilableStage[], facts: (serial: string) => Omit<DeviceFacts, 'split' | 'linkBytesPerSec' | 'opOverheadMs' | 'backends'>,
  shape: { microBatchSize: number; seqLen: number; mode: 'backprop' | 'zo'; zoQueries: number; zoQueriesPerOp: number; relay: RelayDtype; weightFormat: WeightFormat },
  /** A resume's recorded splits, per serial: reused so the continuation computes exactly as the run it continues. */
  keepSplits?: ReadonlyMap<string, HeadSplit>,
): Promise<StageMeasurement[]> {
  // A P-RGE op is one ZO_FORWARD of 2·queriesPerOp perturbed copies: the planner's unit of work in zo mode.
  const batch = opBatchSize(shape);
  const profiled = await Promise.all(stages.map(async (st) => {
    const rssBeforeBytes = (await st.client.stats()).rssBytes;
    const profile = await st.client.profile({ batch, seqLen: shape.seqLen, reps: PROFILE_REPS });
    const secondaryResidentBytes = st.client.capabilities.opencl ? Math.max(0, (await st.client.stats()).rssBytes - rssBeforeBytes) : 0;
    return { profile, secondaryResidentBytes };
  }));
  const applied: Array<Omit<StageMeasurement, 'device'> & { link: LinkMeasurement; secondaryResidentBytes: number }> = [];
  for (const [i, st] of stages.entries()) {
    const caps = st.client.capabilities;
    const { profile, secondaryResidentBytes } = profiled[i]!;
    const kvGroupStep = isGroupedFormat(shape.weightFormat) ? kvGroupStepFor(c, QUANT_GROUP) : 1;
    const kept = keepSplits?.get(st.serial);
    const split = kept ?? chooseHeadSplit(c, profile, { mode: shape.mode, kvGroupStep });
    const secondaryName = profile.backends.find((b) => b.role === 'secondary')?.device ?? '';
    const decision = headSplitDecision(split, { opencl: caps.opencl, openclDeviceType: caps.openclDeviceType, name: secondaryName }, kept !== undefined);
    let splitApplied = decision.apply;
    let splitError = decision.why;
    if (splitApplied) {
      // A split the agent refuses (a constraint the host does not model) costs the speed-up, not the run.
      await st.client.setSplit(splitEntries(split, st.layerEnd - st.layerStart)).catch((e: Error) => {
        splitApplied = false;
        splitError = `refused by the agent (kept unsplit): ${e.message}`;
      });
    }
    const link = await measureLink(st.client, shape.relay);
    applied.push({ serial: st.serial, profile, split, splitApplied, splitError, link, secondaryResidentBytes });
  }
  // All stages at once, as in training: on virtual phones the host's relay hops then compete for the cores the
  // other agents compute on (probed one at a time, the demo's overhead came out 0.4 ms; at once, ~1 ms).
  const overheadsMs = await Promise.all(stages.map((st, i) => measureOpOverheadMs(c, st, batch, shape.seqLen, shape.relay, applied[i]!.link)));
  const out: StageMeasurement[] = applied.map(({ link, secondaryResidentBytes, ...m }, i) => ({
    ...m,
    device: profileToDeviceProfile(c, m.profile, {
      ...facts(m.serial), secondaryResidentBytes, backends: stages[i]!.client.capabilities.backends, linkBytesPerSec: link.bytesPerSec,
      opOverheadMs: overheadsMs[i]!, split: m.splitApplied ? m.split : undefined,
    }),
  }));
  return out;
}
