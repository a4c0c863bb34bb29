// A run's plan from measurements: PROFILE every deployed stage, turn each reply into the planner's DeviceProfile,
// choose and apply each device's CPU/OpenCL head split, re-plan on the measured profiles and say whether the new
// plan is worth a redeploy; afterwards, set what the run measured beside what was predicted. The agent I/O is
// here (PROFILE, SET_SPLIT, GET_LORA timing); the arithmetic is in plan/ and in the pure functions below.
import type { ModelConfig } from '../model/hf-config.js';
import type { ProfileResult } from '../protocol/profile.js';
import type { LayerSplit, NamedTensor, ProfileRequest } from '../protocol/messages.js';
import type { RelayDtype } from '../api/types.js';
import { chooseHeadSplit, kvGroupStepFor, type HeadSplit } from '../plan/head-split.js';
import { isGroupedFormat, QUANT_GROUP, type WeightFormat } from '../model/quantize.js';
import { evaluateLayout, planPipeline, type DeviceProfile, type PipelinePlan, type PlanSettings, type PlannedStage } from '../plan/partition.js';
import { DEFAULT_LINK_BYTES_PER_SEC, layerForwardFlops } from '../plan/default-profile.js';
import { matmulRowBlockFor } from '../plan/memory.js';
import { bubbleFraction } from '../plan/simulator.js';
import { theoreticalBubble } from '../plan/measured-bubble.js';

/** A new plan must be predicted this much faster (1 - new / current step time) to be worth a redeploy. */
export const REPLAN_MIN_GAIN = 0.1;
/**
 * A head split is applied only when it is predicted to cut the layer time by this much: chooseHeadSplit assumes the
 * secondary runs truly beside the CPU (PoCL on the same cores does not), a smaller gain is within PROFILE's noise,
 * and a split changes the summation order (runs differ in the last bits) and adds OpenCL buffers.
 */
export const MIN_SPLIT_GAIN = 0.1;
/**
 * PoCL's CPU devices ("pthread-skylake-...", "cpu-haswell-..."): an OpenCL device on the same cores as the CPU
 * backend, so a split cannot run beside it (chooseHeadSplit assumes separate hardware). HELLO does not report the
 * OpenCL device type, so the name tells; a split there would only make runs differ in their last bits from run to
 * run (the choice follows noisy timings) for no speed.
 */
export function openclSharesCpuCores(deviceName: string): boolean {
  return /^(pthread|cpu)-/i.test(deviceName.trim());
}

/** PROFILE repetitions (medians): 3 keeps profiling a few forward+backward passes per layer and backend. */
export const PROFILE_REPS = 3;
/** LM head backward / forward: the convention of default-profile.ts (PROFILE does not time the head). */
const HEAD_BACKWARD_OVER_FORWARD = 2;
/** The planner sizes a boundary tensor as f32 (partition.ts boundaryMs); a relayed value is this many bytes. */
const PLANNER_BYTES_PER_VALUE = 4;
const RELAY_BYTES_PER_VALUE: Record<RelayDtype, number> = { f16: 2, f32: 4 };
const LINK_PROBES = 3;

/** What the job knows of one deployed stage's device besides its PROFILE reply. */
export interface DeviceFacts {
  serial: string;
  budgetBytes: number;
  /** STATS rss of the agent before LOAD_STAGE (binary, threads, OpenCL driver). */
  idleRssBytes?: number;
  /**
   * Resident growth a PROFILE on an agent with OpenCL leaves behind (the OpenCL backend's copies of the weights and
   * activations, ~55 MiB for a 2-layer hidden-512 stage under PoCL, a whole weight copy on a phone); recorded, not
   * planned with: the job restarts such agents before training (restartAfterProfile), so none of it stays.
   */
  secondaryResidentBytes?: number;
  /** HELLO backends entries, e.g. "cpu(avx2 x2)" (the CPU kernel's row block follows from them). */
  backends: readonly string[];
  /** Measured relay throughput in the planner's units (f32 bytes per second), or undefined for the default. */
  linkBytesPerSec?: number;
  split?: HeadSplit;
}

/** A DeviceProfile plus where its numbers came from, as run.json records it. */
export interface MeasuredProfile extends DeviceProfile {
  layerForwardMsPerToken: number;
  layerBackwardMsPerToken: number;
  secondaryResidentBytes: number;
  linkSource: 'measured (GET_LORA round trips)' | 'default (docs: DEFAULT_LINK_BYTES_PER_SEC)';
  headSource: string;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * PROFILE reply -> the planner's profile of that device, for micro-batches of the reply's [batch, seqLen] (the job
 * profiles at the plan's shape, so no rescaling). Layer times: the primary backend's mean over the stage's layers,
 * scaled by the head split's predicted gain when one is applied. The LM head is not profiled: it gets the layers'
 * measured ms per FLOP times its own FLOPs (2 x tokens x hidden x vocab forward).
 */
export function profileToDeviceProfile(c: ModelConfig, p: ProfileResult, d: DeviceFacts): MeasuredProfile {
  const primary = p.backends[0].name;
  const layers = p.layers.filter((l) => l.backend === primary);
  if (layers.length === 0) throw new Error(`PROFILE of ${d.serial} has no layer timed on its primary backend ${primary}`);
  const split = d.split && (d.split.gpuKvGroups > 0 || d.split.gpuMlpCols > 0) && d.split.layerMsUnsplit > 0 ? d.split.layerMsSplit / d.split.layerMsUnsplit : 1;
  const layerForwardMs = mean(layers.map((l) => l.forwardMs)) * split;
  const layerBackwardMs = mean(layers.map((l) => l.backwardMs)) * split;
  const tokens = p.shape.batch * p.shape.seqLen;
  const msPerFlop = mean(layers.map((l) => l.forwardMs)) / layerForwardFlops(c, tokens, p.shape.seqLen);
  const headForwardMs = msPerFlop * 2 * tokens * c.hiddenSize * c.vocabSize;
  return {
    serial: d.serial,
    budgetBytes: d.budgetBytes,
    layerForwardMs,
    layerBackwardMs,
    headForwardMs,
    headBackwardMs: HEAD_BACKWARD_OVER_FORWARD * headForwardMs,
    linkBytesPerSec: d.linkBytesPerSec ?? DEFAULT_LINK_BYTES_PER_SEC,
    agentBaseBytes: d.idleRssBytes,
    matmulRowBlock: matmulRowBlockFor(d.backends),
    secondaryResidentBytes: d.secondaryResidentBytes ?? 0,
    layerForwardMsPerToken: layerForwardMs / tokens,
    layerBackwardMsPerToken: layerBackwardMs / tokens,
    linkSource: d.linkBytesPerSec ? 'measured (GET_LORA round trips)' : 'default (docs: DEFAULT_LINK_BYTES_PER_SEC)',
    headSource: `layer ms/FLOP x head FLOPs (${primary}); backward ${HEAD_BACKWARD_OVER_FORWARD}x forward`,
  };
}

/** SET_SPLIT entries for a stage of `layers` layers: the device's one split on every layer. */
export function splitEntries(split: HeadSplit, layers: number): LayerSplit[] {
  return Array.from({ length: layers }, () => ({ gpuKvGroups: split.gpuKvGroups, gpuMlpCols: split.gpuMlpCols }));
}

/**
 * Relay throughput of one device's tunnel: GET_LORA moves the stage's adapter (a few hundred KiB to MiB, the size of
 * a relayed activation) agent -> host with no compute, so its best of a few round trips is the link's speed.
 * Returned in the planner's units: the planner counts a boundary value as 4 bytes, the relay sends 2 with f16.
 */
export async function measureLinkBytesPerSec(client: { getLora(): Promise<NamedTensor[]> }, relay: RelayDtype): Promise<number | undefined> {
  let best = Infinity;
  let bytes = 0;
  for (let i = 0; i < LINK_PROBES; i++) {
    const t0 = performance.now();
    const tensors = await client.getLora();
    best = Math.min(best, performance.now() - t0);
    bytes = tensors.reduce((n, t) => n + t.tensor.data.byteLength, 0);
  }
  if (!(bytes > 0 && best > 0)) return undefined;
  return (bytes / (best / 1000)) * (PLANNER_BYTES_PER_VALUE / RELAY_BYTES_PER_VALUE[relay]);
}

export interface ProfilableStage {
  serial: string;
  layerStart: number;
  layerEnd: number;
  client: {
    profile(req: ProfileRequest, opts?: { timeoutMs?: number }): Promise<ProfileResult>;
    setSplit(splits: LayerSplit[]): Promise<void>;
    getLora(): Promise<NamedTensor[]>;
    stats(): Promise<{ rssBytes: number }>;
    readonly capabilities: { backends: string[]; opencl: boolean };
  };
}

export interface StageMeasurement {
  serial: string;
  profile: ProfileResult;
  split: HeadSplit;
  /** Whether SET_SPLIT was sent (the agent has OpenCL and the split is not all-primary). */
  splitApplied: boolean;
  /** Why the split was not applied when it could have been (a CPU OpenCL device, or the agent refused it). */
  splitError?: string;
  device: MeasuredProfile;
}

/**
 * PROFILEs each stage (one at a time: concurrent profiles would time each other's contention), chooses its head
 * split and applies it where the agent has OpenCL, and measures its link. Profiles at the plan's micro-batch shape
 * (in zo mode its 2q copies, as ZO_FORWARD runs them; PROFILE's forward keeps activations, which zo does not).
 */
export async function measureStages(
  c: ModelConfig, stages: ProfilableStage[], facts: (serial: string) => Omit<DeviceFacts, 'split' | 'linkBytesPerSec' | 'backends'>,
  shape: { microBatchSize: number; seqLen: number; mode: 'backprop' | 'zo'; zoQueries: number; relay: RelayDtype; weightFormat: WeightFormat },
  /** A resume's recorded splits, per serial: reused so the continuation computes exactly as the run it continues. */
  keepSplits?: ReadonlyMap<string, HeadSplit>,
): Promise<StageMeasurement[]> {
  const out: StageMeasurement[] = [];
  for (const st of stages) {
    const rssBeforeBytes = (await st.client.stats()).rssBytes;
    // A P-RGE micro-batch is one ZO_FORWARD of its 2q perturbed copies: the planner's unit of work in zo mode.
    const batch = shape.microBatchSize * (shape.mode === 'zo' ? 2 * shape.zoQueries : 1);
    const profile = await st.client.profile({ batch, seqLen: shape.seqLen, reps: PROFILE_REPS });
    const secondaryResidentBytes = st.client.capabilities.opencl ? Math.max(0, (await st.client.stats()).rssBytes - rssBeforeBytes) : 0;
    const kvGroupStep = isGroupedFormat(shape.weightFormat) ? kvGroupStepFor(c, QUANT_GROUP) : 1;
    const split = keepSplits?.get(st.serial) ?? chooseHeadSplit(c, profile, { mode: shape.mode, kvGroupStep });
    const secondaryDevice = profile.backends.find((b) => b.role === 'secondary')?.device ?? '';
    let splitError: string | undefined;
    let worthIt = keepSplits?.has(st.serial) || split.layerMsSplit < (1 - MIN_SPLIT_GAIN) * split.layerMsUnsplit;
    if (!keepSplits && openclSharesCpuCores(secondaryDevice)) {
      worthIt = false;
      splitError = `not applied: the OpenCL device ${secondaryDevice} runs on the CPU backend's cores`;
    }
    if (!worthIt && !splitError) splitError = `not applied: predicted layer gain ${((1 - split.layerMsSplit / split.layerMsUnsplit) * 100).toFixed(1)}% < ${MIN_SPLIT_GAIN * 100}%`;
    let splitApplied = st.client.capabilities.opencl && worthIt && (split.gpuKvGroups > 0 || split.gpuMlpCols > 0);
    if (splitApplied) {
      // A split the agent refuses (a constraint the host does not model) costs the speed-up, not the run.
      await st.client.setSplit(splitEntries(split, st.layerEnd - st.layerStart)).catch((e: Error) => {
        splitApplied = false;
        splitError = `refused by the agent (kept unsplit): ${e.message}`;
      });
    }
    const linkBytesPerSec = await measureLinkBytesPerSec(st.client, shape.relay);
    const device = profileToDeviceProfile(c, profile, { ...facts(st.serial), secondaryResidentBytes, backends: st.client.capabilities.backends, linkBytesPerSec, split: splitApplied ? split : undefined });
    out.push({ serial: st.serial, profile, split, splitApplied, splitError, device });
  }
  return out;
}

export interface Replan {
  /** The deployed layout predicted with the measured profiles. */
  current: PipelinePlan;
  /** planPipeline's best plan on the measured profiles (every device order for up to 6 devices). */
  proposed: PipelinePlan;
  /** 1 - proposed / current predicted step time. */
  gain: number;
  redeploy: boolean;
  reason: string;
}

const layoutOf = (stages: ReadonlyArray<{ serial: string; layerStart: number; layerEnd: number }>) => stages.map((s) => `${s.serial}[${s.layerStart},${s.layerEnd})`).join(' ');

/** Re-plans on measured profiles (given in the deployed stage order) and decides whether to redeploy. */
export function replan(c: ModelConfig, profiles: DeviceProfile[], t: PlanSettings, deployed: readonly PlannedStage[]): Replan {
  const cuts = [deployed[0].layerStart, ...deployed.map((s) => s.layerEnd)];
  const current = evaluateLayout(c, profiles, t, cuts);
  const proposed = planPipeline(c, profiles, t);
  const differs = layoutOf(current.stages) !== layoutOf(proposed.stages);
  const gain = 1 - proposed.stepMs / current.stepMs;
  const redeploy = differs && gain > REPLAN_MIN_GAIN;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const reason = !differs
    ? `the measured profiles give the deployed plan (${layoutOf(current.stages)}, predicted ${current.stepMs.toFixed(0)} ms/step): kept`
    : redeploy
      ? `re-planned on measured profiles: ${layoutOf(proposed.stages)} predicted ${proposed.stepMs.toFixed(0)} ms/step against ${current.stepMs.toFixed(0)} ms for the deployed ${layoutOf(current.stages)} (${pct(gain)} faster > ${pct(REPLAN_MIN_GAIN)}): redeploying`
      : `measured profiles suggest ${layoutOf(proposed.stages)} (${proposed.stepMs.toFixed(0)} ms/step) but it is only ${pct(gain)} faster than the deployed ${layoutOf(current.stages)} (${current.stepMs.toFixed(0)} ms; redeploy needs > ${pct(REPLAN_MIN_GAIN)}): kept`;
  return { current, proposed, gain, redeploy, reason };
}

/** The same profile for an agent started afresh (a redeploy or a recovery): its own idle RSS. */
export function forFreshAgents(d: MeasuredProfile, idleRssBytes: number | undefined): MeasuredProfile {
  return { ...d, agentBaseBytes: idleRssBytes ?? d.agentBaseBytes };
}

/**
 * Whether the profiled agents must be restarted before training even on the same plan: PROFILE left OpenCL copies
 * resident (measured: +26 to +85 MiB under PoCL for stages of 23 MiB of weights) that training would carry, which
 * the memory model cannot predict and a phone's budget may not hold. A restart is cheap (stage files are cached).
 */
export function restartAfterProfile(measured: readonly StageMeasurement[]): boolean {
  return measured.some((m) => m.device.secondaryResidentBytes > 0);
}

/** Re-predicts a plan's layout (stage order and cuts kept) with other profiles of the same devices. */
export function repredict(c: ModelConfig, plan: PipelinePlan, profiles: ReadonlyMap<string, DeviceProfile>, t: PlanSettings): PipelinePlan {
  const cuts = [plan.stages[0].layerStart, ...plan.stages.map((s) => s.layerEnd)];
  return evaluateLayout(c, plan.stages.map((s) => profiles.get(s.serial)!), t, cuts);
}

/** A PipelinePlan's stages as job.ts deploys them. */
export function plannedStages(plan: PipelinePlan): PlannedStage[] {
  return plan.stages.map((s) => ({ layerStart: s.layerStart, layerEnd: s.layerEnd, hasEmbedding: s.hasEmbedding, hasHead: s.hasHead, serial: s.serial, predictedBytes: s.predictedBytes }));
}

/** run.json's `planning`: the measured profiles, head splits and the deployed plan's predictions. */
export function planningRecord(measured: StageMeasurement[], plan: PipelinePlan, microBatches: number, r: Replan) {
  return {
    profiles: measured.map((m) => ({ ...m.device, backends: m.profile.backends, shape: m.profile.shape, reps: m.profile.reps })),
    headSplits: measured.map((m) => ({ serial: m.serial, ...m.split, applied: m.splitApplied, why: m.splitError })),
    layout: plan.stages.map((s) => ({ serial: s.serial, layerStart: s.layerStart, layerEnd: s.layerEnd })),
    predictedStepMs: plan.stepMs,
    predictedBubble: bubbleFraction(plan.sim),
    theoreticalBubble: theoreticalBubble(plan.stages.length, microBatches),
    predictedBytes: plan.stages.map((s) => ({ serial: s.serial, bytes: s.predictedBytes, budgetBytes: s.budgetBytes })),
    // Each stage's compute per step (every micro-batch's forward + backward): what its agent's STATS busy time measures.
    predictedBusyMs: plan.stages.map((s) => ({ serial: s.serial, forwardMs: s.forwardMs, backwardMs: s.backwardMs, perStepMs: microBatches * (s.forwardMs + s.backwardMs) })),
    replan: { redeployed: r.redeploy, gain: r.gain, reason: r.reason, proposedStepMs: r.proposed.stepMs, deployedStepMs: r.current.stepMs },
  };
}
export type PlanningRecord = ReturnType<typeof planningRecord>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * run.json's `measured`, beside the prediction: median step time and bubble over the steps (medians: a loaded host
 * makes single steps noisy), each device's peak RSS, and the ratios a reader compares.
 */
export function measuredRecord(stepMs: number[], bubbles: number[], peakRssBytes: Map<string, number>, busyMs: Map<string, number[]>, planning: PlanningRecord | undefined) {
  const medianStepMs = stepMs.length ? median(stepMs) : null;
  // The agents' own compute time per step (STATS busy_us): how much slower the ops ran than PROFILE timed them.
  const busy = [...busyMs].map(([serial, xs]) => {
    const predicted = planning?.predictedBusyMs.find((p) => p.serial === serial)?.perStepMs;
    const m = median(xs);
    return { serial, medianBusyMsPerStep: m, overPredicted: predicted ? m / predicted : null };
  });
  const bubble = bubbles.length ? median(bubbles) : null;
  return {
    steps: stepMs.length,
    medianStepMs,
    bubble,
    peakRssBytes: [...peakRssBytes].map(([serial, bytes]) => {
      const predicted = planning?.predictedBytes.find((p) => p.serial === serial)?.bytes;
      return { serial, bytes, predictedBytes: predicted ?? null, error: predicted ? (predicted - bytes) / bytes : null };
    }),
    busyMs: busy,
    stepMsOverPredicted: planning && medianStepMs !== null ? medianStepMs / planning.predictedStepMs : null,
  };
}
