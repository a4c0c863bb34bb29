// The Plan step's state: the core's predicted plan for the current choices, the user's edits to its layer split,
// and whether the run may re-plan from measured speeds. Pure (no DOM, no I/O) like state.ts, which folds these
// actions in through planReducer.
import type { LayoutStage, PlanPreview } from '../electron/core/api/contract.js';

export interface PlanState {
  preview: PlanPreview | null;
  /** The inputs `preview` was made for (planKey); while the current key differs, a new preview is on its way. */
  previewKey: string | null;
  busy: boolean;
  error: string | null;
  /** The user's edited split (stages in order), or null for the planner's suggestion. */
  layout: LayoutStage[] | null;
  /** Let the run re-plan after measuring the phones (on by default; editing the split turns it off). */
  replan: boolean;
}

export type PlanAction =
  | { type: 'plan-loading'; key: string }
  | { type: 'plan-loaded'; key: string; preview: PlanPreview }
  | { type: 'plan-failed'; key: string; error: string }
  /** Stage `index` takes (`delta` +1) or gives (-1) one layer at its boundary with the next stage (the last stage: the previous). */
  | { type: 'plan-layer-moved'; index: number; delta: 1 | -1 }
  | { type: 'plan-reset' }
  | { type: 'plan-replan'; replan: boolean };

export function emptyPlan(): PlanState {
  return { preview: null, previewKey: null, busy: false, error: null, layout: null, replan: true };
}

/** What a preview depends on, as one comparable string. */
export function planKey(inputs: { modelPath: string; serials: readonly string[]; mode: string; weightFormat: string; seqLen: number | null; layout: readonly LayoutStage[] | null }): string {
  return JSON.stringify(inputs);
}

/** The stages of a preview as a layout (what startTraining and an edit start from). */
export function layoutOf(preview: PlanPreview): LayoutStage[] {
  return preview.stages.map((s) => ({ serial: s.serial, layerStart: s.layerStart, layerEnd: s.layerEnd }));
}

/**
 * Moves one layer across a boundary: stage `index` grows (delta +1) or shrinks (-1) at its boundary with the next
 * stage, or with the previous one for the last stage. Null when that would leave a stage without layers.
 */
export function moveLayer(layout: readonly LayoutStage[], index: number, delta: 1 | -1): LayoutStage[] | null {
  if (layout.length < 2 || index < 0 || index >= layout.length) return null;
  const out = layout.map((s) => ({ ...s }));
  const last = index === layout.length - 1;
  const self = out[index]!;
  if (!last) {
    const next = out[index + 1]!;
    self.layerEnd += delta;
    next.layerStart += delta;
    if (self.layerEnd <= self.layerStart || next.layerEnd <= next.layerStart) return null;
  } else {
    const prev = out[index - 1]!;
    self.layerStart -= delta;
    prev.layerEnd -= delta;
    if (self.layerEnd <= self.layerStart || prev.layerEnd <= prev.layerStart) return null;
  }
  return out;
}

export function planReducer(p: PlanState, a: PlanAction): PlanState {
  switch (a.type) {
    case 'plan-loading':
      return { ...p, busy: true, error: null, previewKey: p.previewKey };
    case 'plan-loaded':
      return { ...p, busy: false, error: null, preview: a.preview, previewKey: a.key };
    case 'plan-failed':
      // The message replaces the numbers: a plan that does not fit must not look like it does.
      return { ...p, busy: false, error: a.error, preview: null, previewKey: a.key };
    case 'plan-layer-moved': {
      const base = p.layout ?? (p.preview ? layoutOf(p.preview) : null);
      const moved = base ? moveLayer(base, a.index, a.delta) : null;
      // Hand-placed layers are the user's decision: the run keeps them instead of re-planning.
      return moved ? { ...p, layout: moved, replan: false } : p;
    }
    case 'plan-reset':
      return { ...p, layout: null, replan: true };
    case 'plan-replan':
      return { ...p, replan: a.replan };
  }
}
