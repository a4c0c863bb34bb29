// The agent I/O of planning from measurements: PROFILE every deployed stage, apply each device's CPU/OpenCL head
// split (SET_SPLIT) and time each link (GET_LORA round trips). Not the arithmetic that turns the replies into the
// planner's profiles and decides splits and re-plans (measured-plan.ts), nor what run.json records (plan-record.ts).
import type { ModelConfig } from '../model/hf-config.js';
import type { ProfileResult } from '../protocol/profile.js';
import type { LayerSplit, NamedTensor, ProfileRequest } from '../protocol/messages.js';
import type { OpenclDeviceType } from '../protocol/agent-client.js';
import type { RelayDtype } from '../api/types.js';
import { chooseHeadSplit, kvGroupStepFor, type HeadSplit } from '../plan/head-split.js';
import { isGroupedFormat, QUANT_GROUP, type WeightFormat } from '../model/quantize.js';
import { headSplitDecision, profileToDeviceProfile, splitEntries, type DeviceFacts, type StageMeasurement } from './measured-plan.js';

/** PROFILE repetitions (medians): 3 keeps profiling a few forward+backward passes per layer and backend. */
export const PROFILE_REPS = 3;
/** The planner sizes a boundary tensor as f32 (partition.ts boundaryMs); a relayed value is this many bytes. */
const PLANNER_BYTES_PER_VALUE = 4;
const RELAY_BYTES_PER_VALUE: Record<RelayDtype, number> = { f16: 2, f32: 4 };
const LINK_PROBES = 3;

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
    readonly capabilities: { backends: string[]; opencl: boolean; openclDeviceType: OpenclDeviceType | null };
  };
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
    const caps = st.client.capabilities;
    const rssBeforeBytes = (await st.client.stats()).rssBytes;
    // A P-RGE micro-batch is one ZO_FORWARD of its 2q perturbed copies: the planner's unit of work in zo mode.
    const batch = shape.microBatchSize * (shape.mode === 'zo' ? 2 * shape.zoQueries : 1);
    const profile = await st.client.profile({ batch, seqLen: shape.seqLen, reps: PROFILE_REPS });
    const secondaryResidentBytes = caps.opencl ? Math.max(0, (await st.client.stats()).rssBytes - rssBeforeBytes) : 0;
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
    const linkBytesPerSec = await measureLinkBytesPerSec(st.client, shape.relay);
    const device = profileToDeviceProfile(c, profile, { ...facts(st.serial), secondaryResidentBytes, backends: caps.backends, linkBytesPerSec, split: splitApplied ? split : undefined });
    out.push({ serial: st.serial, profile, split, splitApplied, splitError, device });
  }
  return out;
}
