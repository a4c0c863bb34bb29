// The plan as the wizard's Plan step shows it before anything is deployed: the planner's suggested split, or a
// layout the user edited, predicted from the default device profiles (speeds assumed until the run PROFILEs each
// phone) with every stage's memory against its budget and the simulated step. Also checks a given layout, for
// the job that is asked to train on it. Pure: no I/O.
import type { ModelConfig } from '../model/hf-config.js';
import type { LayoutStage, PlanPreview } from '../api/plan-types.js';
import { evaluateLayout, planPipeline, PlanError, type DeviceProfile, type PipelinePlan, type PlanDevice, type PlannedStage, type PlanSettings } from './partition.js';
import { defaultDeviceProfile, DEFAULT_LINK_BYTES_PER_SEC, DEFAULT_PHONE_GFLOPS } from './default-profile.js';
import { bubbleFraction } from './simulator.js';
import { theoreticalBubble } from './measured-bubble.js';
import { opBatchSize, opsPerStep } from './zo-ops.js';

export type { LayoutStage, PlanPreview, PlanPreviewStage } from '../api/plan-types.js';

export type PreviewSettings = PlanSettings & { mode: 'backprop' | 'zo' };

export const PREVIEW_ASSUMPTION =
  `speeds are assumed until training starts (${DEFAULT_PHONE_GFLOPS} GFLOP/s per phone, adb link ${DEFAULT_LINK_BYTES_PER_SEC / 1e6} MB/s): ` +
  'the run then measures every phone (PROFILE) and reports predicted against measured';

/** Default profiles for these devices at these settings (rows per micro-batch as the planner counts them). */
export function defaultProfiles(c: ModelConfig, devices: readonly PlanDevice[], t: PreviewSettings): DeviceProfile[] {
  const rows = opBatchSize(t) * t.seqLen;
  return devices.map((d) => defaultDeviceProfile(c, d.serial, d.budgetBytes, rows, t.seqLen));
}

/**
 * Checks that a layout is a usable pipeline over these devices: contiguous non-empty layer ranges covering every
 * layer from 0, each on a distinct known device. Returns the devices in stage order and the cut points; throws an
 * Error that says what is wrong otherwise.
 */
export function layoutCuts(c: ModelConfig, devices: readonly PlanDevice[], layout: readonly LayoutStage[]): { ordered: PlanDevice[]; cuts: number[] } {
  if (layout.length === 0) throw new Error('the layout has no stages');
  const L = c.numLayers;
  const seen = new Set<string>();
  const ordered: PlanDevice[] = [];
  const cuts = [0];
  layout.forEach((st, s) => {
    const d = devices.find((x) => x.serial === st.serial);
    if (!d) throw new Error(`stage ${s + 1} names ${st.serial}, which is not one of the chosen phones (${devices.map((x) => x.serial).join(', ')})`);
    if (seen.has(st.serial)) throw new Error(`${st.serial} appears in two stages: each phone holds one contiguous range of layers`);
    seen.add(st.serial);
    if (st.layerStart !== cuts[s]) throw new Error(`stage ${s + 1} (${st.serial}) starts at layer ${st.layerStart} but must start at ${cuts[s]}: stages must be contiguous from layer 0`);
    if (!(st.layerEnd > st.layerStart)) throw new Error(`stage ${s + 1} (${st.serial}) holds no layers ([${st.layerStart}, ${st.layerEnd}))`);
    if (st.layerEnd > L) throw new Error(`stage ${s + 1} (${st.serial}) ends at layer ${st.layerEnd} but the model has ${L} layers`);
    ordered.push(d);
    cuts.push(st.layerEnd);
  });
  if (cuts[cuts.length - 1] !== L) throw new Error(`the layout covers layers 0-${cuts[cuts.length - 1] - 1} but the model has ${L}: the last stage must end at layer ${L}`);
  return { ordered, cuts };
}

/** Stages whose predicted memory exceeds their budget, in words (empty when the layout fits). */
export function overBudget(plan: PipelinePlan): string[] {
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(0)} MiB`;
  return plan.stages
    .filter((s) => s.predictedBytes > s.budgetBytes)
    .map((s) => `${s.serial} (layers ${s.layerStart}-${s.layerEnd - 1}) needs ${mib(s.predictedBytes)} but may use ${mib(s.budgetBytes)}`);
}

/** The Plan step's numbers: the suggested split (PlanError when nothing fits), or `layout` predicted as given. */
export function previewPlan(c: ModelConfig, devices: readonly PlanDevice[], t: PreviewSettings, layout?: readonly LayoutStage[]): PlanPreview {
  let plan: PipelinePlan;
  let leftOut: PlanPreview['leftOut'] = [];
  if (layout) {
    const { ordered, cuts } = layoutCuts(c, devices, layout);
    plan = evaluateLayout(c, defaultProfiles(c, ordered, t), t, cuts);
    const used = new Set(ordered.map((d) => d.serial));
    leftOut = devices.filter((d) => !used.has(d.serial)).map((d) => ({ serial: d.serial, reason: 'left out of the edited layout' }));
  } else {
    plan = planPipeline(c, defaultProfiles(c, devices, t), t);
    leftOut = plan.leftOut.map((x) => ({ serial: x.serial, reason: x.reason }));
  }
  return {
    source: layout ? 'given' : 'suggested',
    stages: plan.stages.map((s, i) => ({
      serial: s.serial, layerStart: s.layerStart, layerEnd: s.layerEnd, hasEmbedding: s.hasEmbedding, hasHead: s.hasHead,
      predictedBytes: s.predictedBytes, budgetBytes: s.budgetBytes, fits: s.predictedBytes <= s.budgetBytes,
      memory: {
        weightBytes: s.memory.weightBytes,
        loraBytes: s.memory.loraBytes,
        activationBytes: s.memory.keptActivationBytes,
        scratchBytes: s.memory.scratchBytes + s.memory.workspaceBytes,
        overheadBytes: s.memory.overheadBytes,
      },
      forwardMs: s.forwardMs, backwardMs: s.backwardMs, transferMs: s.transferMs,
      idleFraction: plan.sim.idleFraction[i] ?? 0,
    })),
    leftOut,
    stepMs: plan.stepMs,
    tokensPerSec: plan.tokensPerSec,
    bubble: bubbleFraction(plan.sim),
    theoreticalBubble: theoreticalBubble(plan.stages.length, opsPerStep(t)),
    assumption: PREVIEW_ASSUMPTION,
    settings: { mode: t.mode, weightFormat: t.weightFormat ?? 'f32', seqLen: t.seqLen, microBatches: t.microBatches, microBatchSize: t.microBatchSize, loraRank: t.loraRank },
  };
}

/**
 * A given layout as the job deploys it (stages with their predicted memory), refused with the reason when it does
 * not cover the model properly or a stage would exceed its device's budget (the agent would refuse it later, after
 * minutes of packing and pushing).
 */
export function plannedFromLayout(c: ModelConfig, devices: readonly PlanDevice[], t: PreviewSettings, layout: readonly LayoutStage[]): PlannedStage[] {
  const { ordered, cuts } = layoutCuts(c, devices, layout);
  const plan = evaluateLayout(c, defaultProfiles(c, ordered, t), t, cuts);
  const over = overBudget(plan);
  if (over.length) throw new PlanError(`the given layout does not fit: ${over.join('; ')}. Move layers to a phone with room, or choose smaller base weights.`);
  return plan.stages.map((s) => ({ serial: s.serial, layerStart: s.layerStart, layerEnd: s.layerEnd, hasEmbedding: s.hasEmbedding, hasHead: s.hasHead, predictedBytes: s.predictedBytes }));
}
