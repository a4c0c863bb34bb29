// The wizard's commands: each calls the API and reports progress and outcome to the reducer as actions. No state of
// its own and no rendering; components call these, the reducer decides what the screen shows.
import type { Dispatch } from 'react';
import type { Api } from './api.js';
import type { ParamsOf, ResultOf } from '../electron/core/api/contract.js';
import { MAX_STEPS, chosenSeqLen, currentPlanKey, parseWhole, selectedReady, type Action, type WizardState } from './state.js';
import { layoutOf } from './plan-state.js';

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function loadDefaults(api: Api, dispatch: Dispatch<Action>): Promise<void> {
  try {
    dispatch({ type: 'defaults-loaded', defaults: await api.call('defaults') });
  } catch {
    // Defaults are a convenience: the fields stay empty and the user types a path.
  }
}

export async function refreshDevices(api: Api, dispatch: Dispatch<Action>): Promise<void> {
  dispatch({ type: 'devices-loading' });
  try {
    dispatch({ type: 'devices-loaded', devices: await api.call('listDevices') });
  } catch (err) {
    dispatch({ type: 'devices-failed', error: message(err) });
  }
}

/** Starts the phone's agent for a moment (its own folder; a training agent is left alone) and asks what it runs on. */
export async function probeDevice(api: Api, dispatch: Dispatch<Action>, id: string): Promise<void> {
  dispatch({ type: 'probe-started', id });
  try {
    dispatch({ type: 'probe-done', id, report: await api.call('probeDevice', { id }) });
  } catch (err) {
    dispatch({ type: 'probe-failed', id, error: message(err) });
  }
}

export async function startVirtualPhones(api: Api, dispatch: Dispatch<Action>, count: number): Promise<void> {
  dispatch({ type: 'virtual-starting' });
  try {
    await api.call('startVirtualPhones', { count });
    dispatch({ type: 'virtual-started' });
  } catch (err) {
    dispatch({ type: 'virtual-failed', error: message(err) });
  }
  await refreshDevices(api, dispatch);
}

export async function inspectModel(api: Api, dispatch: Dispatch<Action>, path: string): Promise<void> {
  dispatch({ type: 'model-inspecting' });
  try {
    dispatch({ type: 'model-inspected', summary: await api.call('inspectModel', { path }) });
  } catch (err) {
    dispatch({ type: 'model-failed', error: message(err) });
  }
}

/** Reads, validates and renders the first rows of the dataset with the chosen options (and the model's tokenizer). */
export async function previewDataset(api: Api, dispatch: Dispatch<Action>, params: ParamsOf<'previewDataset'>): Promise<void> {
  dispatch({ type: 'data-loading' });
  try {
    dispatch({ type: 'data-loaded', preview: await api.call('previewDataset', params) });
  } catch (err) {
    dispatch({ type: 'data-failed', error: message(err) });
  }
}

/** Asks the core for the plan of the current choices (the suggestion, or the edited split predicted as it is). */
export async function planTraining(api: Api, dispatch: Dispatch<Action>, state: WizardState): Promise<void> {
  const key = currentPlanKey(state);
  dispatch({ type: 'plan-loading', key });
  const seqLen = chosenSeqLen(state);
  try {
    const preview = await api.call('planTraining', {
      modelPath: state.model.path,
      serials: selectedReady(state),
      weightFormat: state.train.weightFormat,
      mode: state.train.mode,
      ...(seqLen !== null ? { seqLen } : {}),
      ...(state.plan.layout ? { layout: state.plan.layout } : {}),
    });
    dispatch({ type: 'plan-loaded', key, preview });
  } catch (err) {
    dispatch({ type: 'plan-failed', key, error: message(err) });
  }
}

export async function startTraining(api: Api, dispatch: Dispatch<Action>, state: WizardState): Promise<void> {
  const steps = parseWhole(state.train.stepsText, 1, MAX_STEPS);
  if (steps === null) return dispatch({ type: 'train-failed', error: `Steps must be a whole number from 1 to ${MAX_STEPS}.` });
  dispatch({ type: 'train-starting' });
  try {
    const { runId } = await api.call('startTraining', {
      modelPath: state.model.path,
      datasetPath: state.data.path,
      serials: selectedReady(state),
      steps,
      weightFormat: state.train.weightFormat,
      removeStageFiles: state.train.removeStageFiles,
      mode: state.train.mode,
      // Train on the split the Plan step showed (suggested or edited), re-planned after measuring only if allowed.
      ...(state.plan.preview && state.plan.previewKey === currentPlanKey(state) ? { layout: layoutOf(state.plan.preview) } : {}),
      replan: state.plan.replan,
      // Train on what the Data step previewed: its format, columns, bad-row policy and sequence length.
      ...(state.data.preview?.details ? { dataset: state.data.preview.details.options } : {}),
    });
    dispatch({ type: 'train-started', runId });
  } catch (err) {
    dispatch({ type: 'train-failed', error: message(err) });
  }
}

export async function stopTraining(api: Api, dispatch: Dispatch<Action>, runId: string): Promise<void> {
  dispatch({ type: 'train-stopping' });
  try {
    await api.call('stopTraining', { runId });
  } catch (err) {
    dispatch({ type: 'train-stop-failed', error: message(err) });
  }
}

/** Holds the run after its current step (paused) or lets it go on; the 'hold' event confirms. */
export async function pauseTraining(api: Api, dispatch: Dispatch<Action>, runId: string, paused: boolean): Promise<void> {
  dispatch({ type: paused ? 'train-pausing' : 'train-resuming' });
  try {
    await api.call('pauseTraining', { runId, paused });
  } catch (err) {
    dispatch({ type: 'train-pause-failed', error: message(err) });
  }
}

/** Writes the run's adapter in `format`; returns what was written (shown by the step), or null after a failure. */
export async function exportAdapter(
  api: Api,
  dispatch: Dispatch<Action>,
  p: { runId: string; format: 'peft' | 'gguf' | 'merged'; outDir: string; overwrite: boolean },
): Promise<ResultOf<'exportAdapter'> | null> {
  dispatch({ type: 'export-busy' });
  try {
    const result = await api.call('exportAdapter', p);
    dispatch({ type: 'export-done', outDir: result.outDir });
    return result;
  } catch (err) {
    dispatch({ type: 'export-failed', error: message(err) });
    return null;
  }
}

/** Reads the past runs for the runs panel. */
export async function loadRuns(api: Api, dispatch: Dispatch<Action>): Promise<void> {
  dispatch({ type: 'runs-loading' });
  try {
    dispatch({ type: 'runs-loaded', list: await api.call('listRuns') });
  } catch (err) {
    dispatch({ type: 'runs-failed', error: message(err) });
  }
}

/** Re-opens a past run from its folder: the Train step shows it, and Export and Try it use its adapter. */
export async function openRun(api: Api, dispatch: Dispatch<Action>, runId: string): Promise<void> {
  try {
    dispatch({ type: 'run-opened', run: await api.call('openRun', { runId }) });
  } catch (err) {
    dispatch({ type: 'runs-failed', error: message(err) });
  }
}
