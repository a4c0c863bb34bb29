// The wizard's commands: each calls the API and reports progress and outcome to the reducer as actions. No state of
// its own and no rendering; components call these, the reducer decides what the screen shows.
import type { Dispatch } from 'react';
import type { Api } from './api.js';
import { MAX_NEW_TOKENS, MAX_STEPS, parseWhole, selectedReady, type Action, type WizardState } from './state.js';

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

export async function previewDataset(api: Api, dispatch: Dispatch<Action>, path: string): Promise<void> {
  dispatch({ type: 'data-loading' });
  try {
    dispatch({ type: 'data-loaded', preview: await api.call('previewDataset', { path }) });
  } catch (err) {
    dispatch({ type: 'data-failed', error: message(err) });
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

export async function exportAdapter(api: Api, dispatch: Dispatch<Action>, runId: string, outDir: string): Promise<void> {
  dispatch({ type: 'export-busy' });
  try {
    const result = await api.call('exportAdapter', { runId, format: 'peft', outDir });
    dispatch({ type: 'export-done', outDir: result.outDir });
  } catch (err) {
    dispatch({ type: 'export-failed', error: message(err) });
  }
}

export async function generate(api: Api, dispatch: Dispatch<Action>, state: WizardState): Promise<void> {
  const maxTokens = parseWhole(state.tryIt.maxTokensText, 1, MAX_NEW_TOKENS);
  if (maxTokens === null) return dispatch({ type: 'try-failed', error: `Max tokens must be a whole number from 1 to ${MAX_NEW_TOKENS}.` });
  dispatch({ type: 'try-busy' });
  try {
    const runId = state.tryIt.useAdapter ? state.train.runId : null;
    const { text } = await api.call('generate', { runId, prompt: state.tryIt.prompt, maxTokens });
    dispatch({ type: 'try-done', text });
  } catch (err) {
    dispatch({ type: 'try-failed', error: message(err) });
  }
}
