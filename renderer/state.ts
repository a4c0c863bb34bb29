// The wizard's state and its pure reducer (plus the "may I go on?" rules). No DOM, no React, no I/O: it runs in the
// browser and, through the root tsconfig, in Node for test/unit/renderer-state.test.ts. It does not call the API.
import type { AgentReport, DatasetPreview, Defaults, EventMessage, ModelSummary, RunDetails, RunSummary } from '../electron/core/api/contract.js';
import type { WeightFormat } from '../electron/core/model/quantize.js';
import type { DeviceInfo, PipelineSpan, TrainEvent, TrainPlan } from '../electron/core/api/types.js';
import { emptyPlan, planKey, planReducer, type PlanAction, type PlanState } from './plan-state.js';

export const STEPS = [
  { id: 'devices', title: 'Devices' },
  { id: 'model', title: 'Model' },
  { id: 'data', title: 'Data' },
  { id: 'plan', title: 'Plan' },
  { id: 'train', title: 'Train' },
  { id: 'export', title: 'Export' },
  { id: 'try', title: 'Try it' },
] as const;
export type StepId = (typeof STEPS)[number]['id'];

export interface DeviceLive {
  step: number;
  busyMs: number;
  rssBytes: number;
  peakRssBytes: number;
  bytesIn: number;
  bytesOut: number;
  /** Share of the step the agent computed (busy / (busy + idle)), null when the core did not report idle time. */
  busyFraction: number | null;
  /** Compute per backend in the step (they overlap under a head split), null from an agent that does not say. */
  busyByBackendMs: { cpu: number; opencl: number } | null;
  /** The phone's hottest CPU/GPU/SoC zone as its agent read it in this step, and the zone's name. */
  temperatureC: number | null;
  temperatureZone: string | null;
}

/** A phone's CPU/GPU split as the run applied it (the 'planning' phase's headSplits). */
export interface HeadSplitLive {
  gpuKvGroups: number;
  gpuMlpCols: number;
  /** The OpenCL device's name when the phone has one. */
  secondary: string | null;
  /** Why no split was applied (e.g. the gain was too small, or OpenCL shares the CPU's cores), null when applied. */
  why: string | null;
}

export interface PushLive {
  file: string;
  bytesSent: number;
  bytesTotal: number;
  /** Recent speed and time left (null while unknown); what the deployer is doing (pushing, verifying, skipped). */
  bytesPerSec: number | null;
  etaMs: number | null;
  phase: string | null;
}

export type TrainMode = 'backprop' | 'zo';

export type TrainStatus = 'idle' | 'starting' | 'running' | 'pausing' | 'paused' | 'stopping' | 'finished' | 'stopped' | 'failed';

export interface TrainState {
  /** Steps requested in the form (text, so a half-typed number is not forced into shape). */
  stepsText: string;
  /** How the frozen base weights are stored on the phones (4-bit formats use ~1/7 of f32's memory). */
  weightFormat: WeightFormat;
  /** Delete the stage files from the phones when the run ends (default keep: the next run skips the push). */
  removeStageFiles: boolean;
  /** backprop (1F1B + AdamW) or zo (forward-only P-RGE: less memory, slower to learn). */
  mode: TrainMode;
  status: TrainStatus;
  runId: string | null;
  runDir: string | null;
  plan: TrainPlan | null;
  phase: string;
  phaseDetail: string;
  /** Loss curve, two parallel arrays (the shape uPlot wants). */
  lossSteps: number[];
  losses: number[];
  step: number;
  totalSteps: number;
  tokPerSec: number | null;
  /** Tokens/s curve, parallel arrays like the loss curve (kept apart: a re-opened run has losses but no per-step rate). */
  tokSteps: number[];
  tokPerSecs: number[];
  /** Time left at the mean step time so far, and the last step's wall time (null until the core reports them). */
  etaMs: number | null;
  stepMs: number | null;
  /** The latest step's pipeline only: the Gantt shows one step, and keeping every step would grow without bound. */
  timeline: { step: number; spans: PipelineSpan[] } | null;
  /** Memory the planner predicted per phone (serial -> bytes), from the 'planning' phase's data. */
  plannedBytes: Record<string, number>;
  /** Each phone's applied CPU/GPU split (serial -> split), from the 'planning' phase. */
  headSplits: Record<string, HeadSplitLive>;
  lr: number | null;
  evalBefore: number | null;
  evalAfter: number | null;
  devices: Record<string, DeviceLive>;
  push: Record<string, PushLive>;
  error: string | null;
}

export type AgentProbe = { status: 'probing' } | { status: 'done'; report: AgentReport } | { status: 'failed'; error: string };

export interface WizardState {
  step: StepId;
  /** Index of the furthest step reached, for the step bar's check marks. */
  furthest: number;
  devices: {
    list: DeviceInfo[];
    loading: boolean;
    loadedOnce: boolean;
    startingVirtual: boolean;
    error: string | null;
    /** Device ids (server/serial) chosen for training. */
    selected: string[];
    /** "Check agent" results by device id: what its agent can run on, or why it could not be asked. */
    probes: Record<string, AgentProbe>;
  };
  model: { path: string; busy: boolean; summary: ModelSummary | null; error: string | null };
  data: { path: string; busy: boolean; preview: DatasetPreview | null; error: string | null };
  plan: PlanState;
  train: TrainState;
  /** The past-runs panel (top bar "Runs"): its list, and whether it is shown. */
  runs: { open: boolean; loading: boolean; list: RunSummary[]; error: string | null };
  exporting: { outDir: string; outDirEdited: boolean; busy: boolean; result: string | null; error: string | null };
  tryIt: {
    prompt: string;
    maxTokensText: string;
    /** 0 = greedy; above 0 samples with top-p (nucleus) at that temperature. */
    temperatureText: string;
    topPText: string;
    useAdapter: boolean;
    busy: boolean;
    /** The prompt the shown text continues (the field may have been edited since). */
    promptUsed: string;
    text: string | null;
    error: string | null;
  };
}

export type Action =
  | { type: 'go'; step: StepId }
  | { type: 'next' }
  | { type: 'back' }
  | { type: 'defaults-loaded'; defaults: Defaults }
  | { type: 'devices-loading' }
  | { type: 'devices-loaded'; devices: DeviceInfo[] }
  | { type: 'devices-failed'; error: string }
  | { type: 'virtual-starting' }
  | { type: 'virtual-started' }
  | { type: 'virtual-failed'; error: string }
  | { type: 'device-toggled'; id: string }
  | { type: 'probe-started'; id: string }
  | { type: 'probe-done'; id: string; report: AgentReport }
  | { type: 'probe-failed'; id: string; error: string }
  | { type: 'model-path'; path: string }
  | { type: 'model-inspecting' }
  | { type: 'model-inspected'; summary: ModelSummary }
  | { type: 'model-failed'; error: string }
  | { type: 'data-path'; path: string }
  | { type: 'data-loading' }
  | { type: 'data-loaded'; preview: DatasetPreview }
  | { type: 'data-failed'; error: string }
  | { type: 'train-steps'; text: string }
  | { type: 'train-weight-format'; weightFormat: WeightFormat }
  | { type: 'train-remove-stage-files'; remove: boolean }
  | { type: 'train-mode'; mode: TrainMode }
  | { type: 'train-starting' }
  | { type: 'train-started'; runId: string }
  | { type: 'train-failed'; error: string }
  | { type: 'train-stopping' }
  | { type: 'train-stop-failed'; error: string }
  | { type: 'train-pausing' }
  | { type: 'train-resuming' }
  | { type: 'train-pause-failed'; error: string }
  | { type: 'event'; message: EventMessage }
  | { type: 'runs-toggled' }
  | { type: 'runs-loading' }
  | { type: 'runs-loaded'; list: RunSummary[] }
  | { type: 'runs-failed'; error: string }
  | { type: 'run-opened'; run: RunDetails }
  | { type: 'export-dir'; outDir: string }
  | { type: 'export-busy' }
  | { type: 'export-done'; outDir: string }
  | { type: 'export-failed'; error: string }
  | { type: 'try-prompt'; prompt: string }
  | { type: 'try-max-tokens'; text: string }
  | { type: 'try-sampling'; temperatureText?: string; topPText?: string }
  | { type: 'try-use-adapter'; useAdapter: boolean }
  | { type: 'try-busy' }
  | { type: 'try-done'; text: string }
  | { type: 'try-failed'; error: string }
  | PlanAction;

export const DEFAULT_STEPS = 20;
export const MAX_STEPS = 100_000;
export const MAX_NEW_TOKENS = 4096;
export const MAX_TEMPERATURE = 2;

/** A decimal in [min, max] from a text field, or null when the text is not one. */
export function parseDecimal(text: string, min: number, max: number): number | null {
  if (!/^\s*\d*\.?\d+\s*$/.test(text)) return null;
  const v = Number(text);
  return v >= min && v <= max ? v : null;
}

export function emptyTrain(stepsText = String(DEFAULT_STEPS), weightFormat: WeightFormat = 'f32', removeStageFiles = false, mode: TrainMode = 'backprop'): TrainState {
  return {
    stepsText,
    weightFormat,
    removeStageFiles,
    mode,
    status: 'idle',
    runId: null,
    runDir: null,
    plan: null,
    phase: '',
    phaseDetail: '',
    lossSteps: [],
    losses: [],
    step: 0,
    totalSteps: 0,
    tokPerSec: null,
    tokSteps: [],
    tokPerSecs: [],
    etaMs: null,
    stepMs: null,
    timeline: null,
    plannedBytes: {},
    headSplits: {},
    lr: null,
    evalBefore: null,
    evalAfter: null,
    devices: {},
    push: {},
    error: null,
  };
}

export function initialState(): WizardState {
  return {
    step: 'devices',
    furthest: 0,
    devices: { list: [], loading: false, loadedOnce: false, startingVirtual: false, error: null, selected: [], probes: {} },
    model: { path: '', busy: false, summary: null, error: null },
    data: { path: '', busy: false, preview: null, error: null },
    plan: emptyPlan(),
    train: emptyTrain(),
    runs: { open: false, loading: false, list: [], error: null },
    exporting: { outDir: '', outDirEdited: false, busy: false, result: null, error: null },
    tryIt: {
      prompt: 'Once upon a time',
      maxTokensText: '64',
      temperatureText: '0',
      topPText: '0.9',
      useAdapter: true,
      busy: false,
      promptUsed: '',
      text: null,
      error: null,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Rules

/** adb says "device" and its properties have been read (an ABI is needed to pick the agent binary). */
export const isReady = (d: DeviceInfo) => d.state === 'device' && d.abis.length > 0;

/** A whole number in [min, max], or null. */
export function parseWhole(text: string, min: number, max: number): number | null {
  if (!/^\s*\d+\s*$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= min && n <= max ? n : null;
}

export const isTraining = (t: TrainState) =>
  t.status === 'starting' || t.status === 'running' || t.status === 'pausing' || t.status === 'paused' || t.status === 'stopping';
/** A run whose adapter can be exported and tried: finished, or stopped after at least one step. */
export const hasUsableRun = (t: TrainState) =>
  t.runId !== null && (t.status === 'finished' || (t.status === 'stopped' && t.lossSteps.length > 0));

/** Why the wizard may not leave `step` forwards, or null when it may. Written for the person at the screen. */
export function blocker(state: WizardState, step: StepId = state.step): string | null {
  switch (step) {
    case 'devices':
      if (state.devices.selected.length === 0) return 'Select at least one ready phone.';
      return null;
    case 'model':
      if (state.model.busy) return 'Inspecting the model...';
      if (!state.model.summary) return 'Inspect the model before going on.';
      return null;
    case 'data':
      if (state.data.busy) return 'Reading the dataset...';
      if (!state.data.preview) return 'Preview the dataset before going on.';
      if (state.data.preview.count === 0) return 'The dataset has no usable samples: fix the errors listed below.';
      return null;
    case 'plan': {
      const p = state.plan;
      if (p.error) return 'The plan does not work out: see the message above the table.';
      if (p.busy || p.previewKey !== currentPlanKey(state) || !p.preview) return 'Working out the plan...';
      const over = p.preview.stages.filter((s) => !s.fits).map((s) => s.serial);
      if (over.length > 0) return `Over its memory budget: ${over.join(', ')}. Move layers to another phone or choose smaller base weights.`;
      return null;
    }
    case 'train':
      if (state.train.status === 'paused') return 'Training is paused: resume or stop it before going on.';
      if (isTraining(state.train)) return 'Training is running: wait for it to finish or stop it.';
      if (!hasUsableRun(state.train)) return 'Train for at least one step before going on.';
      return null;
    case 'export':
      return null; // exporting is optional; "Try it" uses the run directly
    case 'try':
      return 'This is the last step.';
  }
}

const indexOf = (step: StepId) => STEPS.findIndex((s) => s.id === step);

/** Steps before `step` must all be complete to visit it (going back is always allowed). */
export function canVisit(state: WizardState, step: StepId): boolean {
  // A finished run (trained now or re-opened from the runs list) is all Export and Try it need.
  if ((step === 'export' || step === 'try') && hasUsableRun(state.train) && !isTraining(state.train)) return true;
  const target = indexOf(step);
  for (let i = 0; i < target; i++) if (blocker(state, STEPS[i]!.id) !== null) return false;
  return true;
}

/** Step-bar check mark: reached before, and still complete (editing an earlier step can undo it). */
export function isDone(state: WizardState, step: StepId): boolean {
  const i = indexOf(step);
  return i !== indexOf(state.step) && i <= state.furthest && canVisit(state, step) && blocker(state, step) === null;
}

/** The sequence length the Data step chose (null: the training default). */
export function chosenSeqLen(state: WizardState): number | null {
  return state.data.preview?.details?.options.seqLen ?? null;
}

/** The inputs of the plan the Plan step should show now (compared with plan.previewKey). */
export function currentPlanKey(state: WizardState): string {
  return planKey({
    modelPath: state.model.path,
    serials: selectedReady(state),
    mode: state.train.mode,
    weightFormat: state.train.weightFormat,
    seqLen: chosenSeqLen(state),
    layout: state.plan.layout,
  });
}

/** Phones to train on (ids): the selection, restricted to phones that are ready now. */
export function selectedReady(state: WizardState): string[] {
  const ready = new Set(state.devices.list.filter(isReady).map((d) => d.id));
  return state.devices.selected.filter((s) => ready.has(s));
}

// ---------------------------------------------------------------------------------------------------------------
// Reducer

/** A new device list (polled or pushed): keeps the user's choices that are still ready; on first sight of ready
 * phones, selects them all. */
function withDevices(state: WizardState, list: DeviceInfo[]): WizardState {
  const ready = list.filter(isReady).map((d) => d.id);
  let selected = state.devices.selected.filter((s) => ready.includes(s));
  if (selected.length === 0 && state.devices.selected.length === 0) selected = ready;
  return { ...state, devices: { ...state.devices, list, loading: false, loadedOnce: true, error: null, selected } };
}

function withProbe(state: WizardState, id: string, probe: AgentProbe): WizardState {
  return { ...state, devices: { ...state.devices, probes: { ...state.devices.probes, [id]: probe } } };
}

/** The Train step's view of a past run: its curve, held-out losses and plan, as if it had just finished. */
function trainFromRun(current: TrainState, run: RunDetails): TrainState {
  const status: TrainStatus = run.status === 'finished' ? 'finished' : run.status === 'stopped' ? 'stopped' : 'failed';
  const n = run.losses.length;
  return {
    ...emptyTrain(current.stepsText, current.weightFormat, current.removeStageFiles, current.mode),
    status,
    runId: run.runId,
    runDir: run.runDir,
    plan: run.plan,
    phase: status === 'finished' ? 'Finished' : status === 'stopped' ? 'Stopped' : 'Failed',
    phaseDetail: 'opened from its run folder',
    lossSteps: run.losses.map((_, i) => i + 1),
    losses: [...run.losses],
    step: n,
    totalSteps: run.steps,
    tokPerSec: run.tokPerSec,
    evalBefore: run.evalLossBefore,
    evalAfter: run.evalLossAfter,
    error: status === 'failed' ? (run.error ?? `the run's status is "${run.status}"`) : null,
  };
}

export function reducer(state: WizardState, action: Action): WizardState {
  switch (action.type) {
    case 'go':
      return canVisit(state, action.step)
        ? { ...state, step: action.step, furthest: Math.max(state.furthest, indexOf(action.step)) }
        : state;
    case 'next': {
      const i = indexOf(state.step);
      if (blocker(state) !== null || i >= STEPS.length - 1) return state;
      return { ...state, step: STEPS[i + 1]!.id, furthest: Math.max(state.furthest, i + 1) };
    }
    case 'back': {
      const i = indexOf(state.step);
      return i > 0 ? { ...state, step: STEPS[i - 1]!.id } : state;
    }
    case 'defaults-loaded':
      // Only fill fields the user has not typed in yet.
      return {
        ...state,
        model: state.model.path ? state.model : { ...state.model, path: action.defaults.modelPath },
        data: state.data.path ? state.data : { ...state.data, path: action.defaults.datasetPath },
      };

    case 'devices-loading':
      return { ...state, devices: { ...state.devices, loading: true } };
    case 'devices-loaded':
      return withDevices(state, action.devices);
    case 'devices-failed':
      return { ...state, devices: { ...state.devices, loading: false, loadedOnce: true, error: action.error } };
    case 'virtual-starting':
      return { ...state, devices: { ...state.devices, startingVirtual: true, error: null } };
    case 'virtual-started':
      return { ...state, devices: { ...state.devices, startingVirtual: false } };
    case 'virtual-failed':
      return { ...state, devices: { ...state.devices, startingVirtual: false, error: action.error } };
    case 'device-toggled': {
      const device = state.devices.list.find((d) => d.id === action.id);
      if (!device || !isReady(device)) return state;
      const on = state.devices.selected.includes(action.id);
      const selected = on
        ? state.devices.selected.filter((s) => s !== action.id)
        : [...state.devices.selected, action.id];
      // An edited split names the phones it was made for: another set of phones starts from a new suggestion.
      return { ...state, devices: { ...state.devices, selected }, plan: { ...state.plan, layout: null, replan: true } };
    }

    case 'probe-started':
      return withProbe(state, action.id, { status: 'probing' });
    case 'probe-done':
      return withProbe(state, action.id, { status: 'done', report: action.report });
    case 'probe-failed':
      return withProbe(state, action.id, { status: 'failed', error: action.error });

    case 'model-path':
      return { ...state, model: { path: action.path, busy: false, summary: null, error: null } };
    case 'model-inspecting':
      return { ...state, model: { ...state.model, busy: true, summary: null, error: null } };
    case 'model-inspected':
      return { ...state, model: { ...state.model, busy: false, summary: action.summary, error: null } };
    case 'model-failed':
      return { ...state, model: { ...state.model, busy: false, summary: null, error: action.error } };

    case 'data-path':
      return { ...state, data: { path: action.path, busy: false, preview: null, error: null } };
    case 'data-loading':
      return { ...state, data: { ...state.data, busy: true, preview: null, error: null } };
    case 'data-loaded':
      return { ...state, data: { ...state.data, busy: false, preview: action.preview, error: null } };
    case 'data-failed':
      return { ...state, data: { ...state.data, busy: false, preview: null, error: action.error } };

    case 'train-steps':
      return { ...state, train: { ...state.train, stepsText: action.text } };
    case 'train-weight-format':
      return { ...state, train: { ...state.train, weightFormat: action.weightFormat } };
    case 'train-remove-stage-files':
      return { ...state, train: { ...state.train, removeStageFiles: action.remove } };
    case 'train-mode':
      return { ...state, train: { ...state.train, mode: action.mode } };
    case 'train-starting':
      if (isTraining(state.train)) return state;
      return {
        ...state,
        train: { ...emptyTrain(state.train.stepsText, state.train.weightFormat, state.train.removeStageFiles, state.train.mode), status: 'starting', phase: 'Starting', phaseDetail: '' },
        exporting: { ...state.exporting, result: null, error: null, outDir: state.exporting.outDirEdited ? state.exporting.outDir : '' },
        tryIt: { ...state.tryIt, text: null, error: null },
      };
    case 'train-started':
      // The run-started event may have arrived before this reply; either way the runId is now known.
      return {
        ...state,
        train: {
          ...state.train,
          runId: action.runId,
          status: state.train.status === 'starting' ? 'running' : state.train.status,
        },
      };
    case 'train-failed':
      return { ...state, train: { ...state.train, status: 'failed', error: action.error, phase: 'Failed' } };
    case 'train-stopping':
      return ['running', 'starting', 'pausing', 'paused'].includes(state.train.status)
        ? { ...state, train: { ...state.train, status: 'stopping', phase: 'Stopping' } }
        : state;
    case 'train-stop-failed':
      return { ...state, train: { ...state.train, status: 'running', error: action.error } };
    case 'train-pausing':
      return state.train.status === 'running' ? { ...state, train: { ...state.train, status: 'pausing', phase: 'Pausing', phaseDetail: 'after the current step' } } : state;
    case 'train-resuming':
      return state.train.status === 'paused' || state.train.status === 'pausing'
        ? { ...state, train: { ...state.train, status: 'running', phase: 'Training', phaseDetail: '' } }
        : state;
    case 'train-pause-failed':
      return { ...state, train: { ...state.train, status: 'running', error: action.error } };

    case 'plan-loading':
    case 'plan-loaded':
    case 'plan-failed':
    case 'plan-layer-moved':
    case 'plan-reset':
    case 'plan-replan':
      return { ...state, plan: planReducer(state.plan, action) };
    case 'event':
      if (action.message.event === 'devices') return withDevices(state, action.message.data);
      if (action.message.event === 'train-event') return applyTrainEvent(state, action.message.data);
      return state; // generate-token: the Try step streams its own call

    case 'runs-toggled':
      return { ...state, runs: { ...state.runs, open: !state.runs.open } };
    case 'runs-loading':
      return { ...state, runs: { ...state.runs, loading: true, error: null } };
    case 'runs-loaded':
      return { ...state, runs: { ...state.runs, loading: false, list: action.list, error: null } };
    case 'runs-failed':
      return { ...state, runs: { ...state.runs, loading: false, error: action.error } };
    case 'run-opened':
      if (isTraining(state.train)) return state;
      return {
        ...state,
        step: 'train',
        train: trainFromRun(state.train, action.run),
        runs: { ...state.runs, open: false },
        exporting: { ...state.exporting, result: null, error: null, outDir: state.exporting.outDirEdited ? state.exporting.outDir : '' },
        tryIt: { ...state.tryIt, text: null, error: null },
      };

    case 'export-dir':
      return { ...state, exporting: { ...state.exporting, outDir: action.outDir, outDirEdited: true, result: null, error: null } };
    case 'export-busy':
      return { ...state, exporting: { ...state.exporting, busy: true, result: null, error: null } };
    case 'export-done':
      return { ...state, exporting: { ...state.exporting, busy: false, result: action.outDir, error: null } };
    case 'export-failed':
      return { ...state, exporting: { ...state.exporting, busy: false, result: null, error: action.error } };

    case 'try-prompt':
      return { ...state, tryIt: { ...state.tryIt, prompt: action.prompt } };
    case 'try-max-tokens':
      return { ...state, tryIt: { ...state.tryIt, maxTokensText: action.text } };
    case 'try-sampling':
      return {
        ...state,
        tryIt: { ...state.tryIt, temperatureText: action.temperatureText ?? state.tryIt.temperatureText, topPText: action.topPText ?? state.tryIt.topPText },
      };
    case 'try-use-adapter':
      return { ...state, tryIt: { ...state.tryIt, useAdapter: action.useAdapter } };
    case 'try-busy':
      return { ...state, tryIt: { ...state.tryIt, busy: true, promptUsed: state.tryIt.prompt, text: null, error: null } };
    case 'try-done':
      return { ...state, tryIt: { ...state.tryIt, busy: false, text: action.text, error: null } };
    case 'try-failed':
      return { ...state, tryIt: { ...state.tryIt, busy: false, text: null, error: action.error } };
  }
}

/** Folds one streamed event into the train state. Events of other runs (e.g. a CLI run) are ignored. */
export function applyTrainEvent(state: WizardState, ev: TrainEvent): WizardState {
  let t = state.train;
  if (t.runId === null) {
    // Between "Start" and the reply, adopt the run that announces itself.
    if (t.status !== 'starting' || ev.type !== 'run-started') return state;
    t = { ...t, runId: ev.runId };
  } else if (ev.runId !== t.runId) {
    return state;
  }

  switch (ev.type) {
    case 'run-started':
      t = {
        ...t,
        runDir: ev.runDir,
        plan: ev.plan,
        status: t.status === 'starting' ? 'running' : t.status,
      };
      break;
    case 'phase': {
      // Phases while held (a checkpoint written before the hold) must not hide that the run is paused.
      t = t.status === 'paused' ? t : { ...t, phase: ev.phase, phaseDetail: ev.detail };
      const planned = ev.phase === 'planning' ? plannedBytesOf(ev.data) : null;
      // A re-plan (after a lost phone) announces a new split: its numbers replace the old ones wholesale.
      if (planned) t = { ...t, plannedBytes: planned, headSplits: headSplitsOf(ev.data) };
      break;
    }
    case 'hold':
      t = ev.paused
        ? { ...t, status: t.status === 'stopping' ? t.status : 'paused', phase: 'Paused', phaseDetail: `before step ${ev.step}; the phones keep their state` }
        : { ...t, status: t.status === 'paused' || t.status === 'pausing' ? 'running' : t.status, phase: 'Training', phaseDetail: '' };
      break;
    case 'push-progress':
      t = {
        ...t,
        push: {
          ...t.push,
          [ev.serial]: {
            file: ev.file, bytesSent: ev.bytesSent, bytesTotal: ev.bytesTotal,
            bytesPerSec: ev.bytesPerSec ?? null, etaMs: ev.etaMs ?? null, phase: ev.phase ?? null,
          },
        },
      };
      break;
    case 'step': {
      // Steps can repeat after a resume from checkpoint: replace, do not append, so the x axis stays monotonic.
      let cut = t.lossSteps.length;
      while (cut > 0 && t.lossSteps[cut - 1]! >= ev.step) cut--;
      t = {
        ...t,
        lossSteps: [...t.lossSteps.slice(0, cut), ev.step],
        losses: [...t.losses.slice(0, cut), ev.loss],
        ...withTokens(t, ev.step, ev.tokPerSec),
        step: ev.step,
        totalSteps: ev.totalSteps,
        tokPerSec: ev.tokPerSec,
        etaMs: ev.etaMs ?? t.etaMs,
        stepMs: ev.stepMs ?? t.stepMs,
        lr: ev.lr,
      };
      break;
    }
    case 'timeline':
      // Only ever the newest step (a resume may replay an older step number; it is still the newest pipeline).
      t = { ...t, timeline: { step: ev.step, spans: ev.spans } };
      break;
    case 'device-step':
      t = {
        ...t,
        devices: {
          ...t.devices,
          [ev.serial]: {
            step: ev.step,
            busyMs: ev.busyMs,
            rssBytes: ev.rssBytes,
            peakRssBytes: ev.peakRssBytes,
            bytesIn: ev.bytesIn,
            bytesOut: ev.bytesOut,
            busyFraction: ev.idleMs === undefined || ev.busyMs + ev.idleMs <= 0 ? null : ev.busyMs / (ev.busyMs + ev.idleMs),
            busyByBackendMs: ev.busyByBackendMs ?? null,
            temperatureC: ev.temperatureC ?? null,
            temperatureZone: ev.temperatureZone ?? null,
          },
        },
      };
      break;
    case 'eval':
      t = ev.when === 'before' ? { ...t, evalBefore: ev.loss } : { ...t, evalAfter: ev.loss };
      break;
    case 'run-finished': {
      const stopped = t.status === 'stopping';
      const status: TrainStatus = ev.ok ? 'finished' : stopped ? 'stopped' : 'failed';
      t = {
        ...t,
        runDir: ev.runDir,
        status,
        phase: status === 'finished' ? 'Finished' : status === 'stopped' ? 'Stopped' : 'Failed',
        phaseDetail: '',
        error: ev.ok || stopped ? null : (ev.error ?? 'the run failed without a message'),
      };
      break;
    }
  }

  let exporting = state.exporting;
  if (t.runDir && !exporting.outDirEdited && exporting.outDir === '') {
    exporting = { ...exporting, outDir: joinPath(t.runDir, 'adapter-peft') };
  }
  return { ...state, train: t, exporting };
}

/** The tokens/s curve with one more step; like the loss curve, a repeated step (resume) replaces the tail. */
function withTokens(t: TrainState, step: number, tokPerSec: number): Pick<TrainState, 'tokSteps' | 'tokPerSecs'> {
  let cut = t.tokSteps.length;
  while (cut > 0 && t.tokSteps[cut - 1]! >= step) cut--;
  return { tokSteps: [...t.tokSteps.slice(0, cut), step], tokPerSecs: [...t.tokPerSecs.slice(0, cut), tokPerSec] };
}

/** serial -> bytes from the planning phase's data.predictedBytes ([{serial, bytes}]), or null when it has no such list.
 * The data is typed unknown on the wire (it is run.json's record), so each entry is checked before it is trusted. */
export function plannedBytesOf(data: unknown): Record<string, number> | null {
  const list = (data as { predictedBytes?: unknown } | null | undefined)?.predictedBytes;
  if (!Array.isArray(list)) return null;
  const out: Record<string, number> = {};
  for (const p of list as Array<{ serial?: unknown; bytes?: unknown }>) {
    if (typeof p?.serial === 'string' && typeof p.bytes === 'number' && Number.isFinite(p.bytes)) out[p.serial] = p.bytes;
  }
  return out;
}

/** serial -> applied split from the planning phase's data.headSplits; a split that was not applied counts as none. */
export function headSplitsOf(data: unknown): Record<string, HeadSplitLive> {
  const list = (data as { headSplits?: unknown } | null | undefined)?.headSplits;
  const out: Record<string, HeadSplitLive> = {};
  if (!Array.isArray(list)) return out;
  for (const h of list as Array<Record<string, unknown>>) {
    if (typeof h?.serial !== 'string') continue;
    const applied = h.applied === true;
    const whole = (v: unknown) => (applied && typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0);
    out[h.serial] = {
      gpuKvGroups: whole(h.gpuKvGroups),
      gpuMlpCols: whole(h.gpuMlpCols),
      secondary: typeof h.secondary === 'string' ? h.secondary : null,
      why: applied ? null : typeof h.why === 'string' && h.why ? h.why : 'not applied',
    };
  }
  return out;
}

/** Joins with the separator the run folder already uses (Windows paths come from a Windows core). */
function joinPath(dir: string, name: string): string {
  const sep = dir.includes('\\') && !dir.includes('/') ? '\\' : '/';
  return dir.endsWith(sep) ? dir + name : dir + sep + name;
}
