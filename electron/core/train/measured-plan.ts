// The arithmetic of planning from measurements: a PROFILE reply -> the planner's DeviceProfile, whether a chosen
// CPU/OpenCL head split is applied, and whether the plan re-made on measured profiles is worth a redeploy. Pure
// functions; the agent I/O that gathers the numbers is profile-plan.ts, what run.json records is plan-record.ts.
import type { ModelConfig } from '../model/hf-config.js';
import type { ProfileResult } from '../protocol/profile.js';
import type { LayerSplit } from '../protocol/messages.js';
import type { OpenclDeviceType } from '../protocol/agent-client.js';
import type { HeadSplit } from '../plan/head-split.js';
import { evaluateLayout, planPipeline, type DeviceProfile, type PipelinePlan, type PlanSettings, type PlannedStage } from '../plan/partition.js';
import { DEFAULT_LINK_BYTES_PER_SEC, DEFAULT_OP_OVERHEAD_MS, layerForwardFlops } from '../plan/default-profile.js';
import { matmulRowBlockFor } from '../plan/memory.js';

/** A new plan must be predicted this much faster (1 - new / current step time) to be worth a redeploy. */
export const REPLAN_MIN_GAIN = 0.1;
/**
 * A head split is applied only when it is predicted to cut the layer time by this much: chooseHeadSplit assumes the
 * secondary runs truly beside the CPU (PoCL on the same cores does not), a smaller gain is within PROFILE's noise,
 * and a split changes the summation order (runs differ in the last bits) and adds OpenCL buffers.
 */
export const MIN_SPLIT_GAIN = 0.1;
/** LM head backward / forward: the convention of default-profile.ts (PROFILE does not time the head). */
const HEAD_BACKWARD_OVER_FORWARD = 2;

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
  /** Measured cost of one op beyond compute and transfer (profile-plan.ts measureOpOverheadMs), ms. */
  opOverheadMs?: number;
  split?: HeadSplit;
}

/** A DeviceProfile plus where its numbers came from, as run.json records it. */
export interface MeasuredProfile extends DeviceProfile {
  layerForwardMsPerToken: number;
  layerBackwardMsPerToken: number;
  secondaryResidentBytes: number;
  linkSource: 'measured (STATS and GET_LORA round trips)' | 'default (docs: DEFAULT_LINK_BYTES_PER_SEC)';
  headSource: string;
}

/** One profiled stage: its PROFILE reply, the head split chosen for it and whether it was applied, its profile. */
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
    opOverheadMs: d.opOverheadMs ?? DEFAULT_OP_OVERHEAD_MS,
    agentBaseBytes: d.idleRssBytes,
    matmulRowBlock: matmulRowBlockFor(d.backends),
    secondaryResidentBytes: d.secondaryResidentBytes ?? 0,
    layerForwardMsPerToken: layerForwardMs / tokens,
    layerBackwardMsPerToken: layerBackwardMs / tokens,
    linkSource: d.linkBytesPerSec ? 'measured (STATS and GET_LORA round trips)' : 'default (docs: DEFAULT_LINK_BYTES_PER_SEC)',
    headSource: `layer ms/FLOP x head FLOPs (${primary}); backward ${HEAD_BACKWARD_OVER_FORWARD}x forward`,
  };
}

/** The device a head split would give work to, as its agent reported it. */
export interface SplitDevice {
  /** The agent has an OpenCL backend (HELLO backends), the only one SET_SPLIT gives work to. */
  opencl: boolean;
  /** HELLO's CL_DEVICE_TYPE of that backend. */
  openclDeviceType: OpenclDeviceType | null;
  /** PROFILE's name of the secondary, for the message. */
  name: string;
}

/**
 * Whether a chosen head split is sent to the agent (SET_SPLIT), and if not, why (for the log and run.json). A split
 * kept from the run being resumed is applied as it was, so the continuation computes exactly as before. Otherwise:
 * never on an OpenCL device of type CPU (PoCL): it runs on the CPU backend's own cores, so the shares cannot run
 * beside each other as chooseHeadSplit assumes, and a split there would only make runs differ in their last bits
 * (the choice follows noisy timings) for no speed; and only when the predicted layer gain reaches MIN_SPLIT_GAIN.
 */
export function headSplitDecision(split: HeadSplit, device: SplitDevice, kept: boolean): { apply: boolean; why?: string } {
  const nonEmpty = split.gpuKvGroups > 0 || split.gpuMlpCols > 0;
  if (kept) return { apply: device.opencl && nonEmpty };
  if (device.openclDeviceType === 'cpu') {
    return { apply: false, why: `not applied: the OpenCL device ${device.name} is a CPU device (CL_DEVICE_TYPE_CPU) on the CPU backend's cores` };
  }
  if (!(split.layerMsSplit < (1 - MIN_SPLIT_GAIN) * split.layerMsUnsplit)) {
    const gain = (1 - split.layerMsSplit / split.layerMsUnsplit) * 100;
    return { apply: false, why: `not applied: predicted layer gain ${gain.toFixed(1)}% < ${MIN_SPLIT_GAIN * 100}%` };
  }
  return { apply: device.opencl && nonEmpty };
}

/** SET_SPLIT entries for a stage of `layers` layers: the device's one split on every layer. */
export function splitEntries(split: HeadSplit, layers: number): LayerSplit[] {
  return Array.from({ length: layers }, () => ({ gpuKvGroups: split.gpuKvGroups, gpuMlpCols: split.gpuMlpCols }));
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
  // A proposal that leaves a phone out says why (the planner's words, with its numbers).
  const leftOut = proposed.leftOut.length ? ` (${proposed.leftOut.map((x) => x.reason).join('; ')})` : '';
  const reason = !differs
    ? `the measured profiles give the deployed plan (${layoutOf(current.stages)}, predicted ${current.stepMs.toFixed(0)} ms/step): kept`
    : redeploy
      ? `re-planned on measured profiles: ${layoutOf(proposed.stages)}${leftOut} predicted ${proposed.stepMs.toFixed(0)} ms/step against ${current.stepMs.toFixed(0)} ms for the deployed ${layoutOf(current.stages)} (${pct(gain)} faster > ${pct(REPLAN_MIN_GAIN)}): redeploying`
      : `measured profiles suggest ${layoutOf(proposed.stages)}${leftOut} (${proposed.stepMs.toFixed(0)} ms/step) but it is only ${pct(gain)} faster than the deployed ${layoutOf(current.stages)} (${current.stepMs.toFixed(0)} ms; redeploy needs > ${pct(REPLAN_MIN_GAIN)}): kept`;
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
