// Unit tests for the wizard reducer (renderer/state.ts), run in Node: step navigation and its validation, device
// selection, path edits invalidating results, and folding of streamed train events. No DOM, no React.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceInfo, TrainEvent, TrainPlan } from '../../electron/core/api/types.js';
import type { ModelSummary } from '../../electron/core/api/contract.js';
import {
  blocker,
  canVisit,
  currentPlanKey,
  initialState,
  isDone,
  parseDecimal,
  parseWhole,
  reducer,
  selectedReady,
  type Action,
  type WizardState,
} from '../../renderer/state.js';
import { formatPush } from '../../renderer/format.js';
import { planLoaded } from '../support/renderer-fixtures.js';

function device(serial: string, state = 'device'): DeviceInfo {
  return {
    id: serial,
    server: '127.0.0.1:5037',
    serial,
    state,
    guidance: state === 'device' ? '' : 'Unlock the phone and accept the USB debugging prompt.',
    manufacturer: 'Confidant',
    model: 'Virtual',
    androidVersion: '14',
    soc: 'x86_64',
    abis: ['x86_64'],
    ramTotalBytes: 4 << 30,
    ramAvailableBytes: 3 << 30,
    cpuCores: 4,
    cpuMaxFreqsKHz: [1_800_000, 1_800_000, 2_400_000, 2_400_000],
    batteryPercent: 100,
    batteryCharging: true,
    temperatureC: 30,
    thermalZones: [],
    virtual: true,
  };
}

const run = (state: WizardState, ...actions: Action[]) => actions.reduce(reducer, state);
const summary: ModelSummary = {
  path: '/m', source: 'hf', modelType: 'llama', numLayers: 5, hiddenSize: 64, intermediateSize: 172, numHeads: 8, numKvHeads: 4, vocabSize: 512, paramCount: 260_000,
  storage: [['F32', 260_000]], ropeScaling: null, slidingWindow: null, tiedEmbeddings: true, attentionBias: false,
};
const preview = { path: '/d.jsonl', samples: ['hello'], count: 10, errors: [{ line: 3, message: 'not JSON' }] };
const plan: TrainPlan = {
  stages: [
    { serial: 'A', layerStart: 0, layerEnd: 3, hasEmbedding: true, hasHead: false, predictedBytes: 1e6 },
    { serial: 'B', layerStart: 3, layerEnd: 5, hasEmbedding: false, hasHead: true, predictedBytes: 1e6 },
  ],
  microBatches: 4,
  microBatchSize: 1,
  seqLen: 64,
};
const ev = {
  started: (runId = 'r1'): TrainEvent => ({ type: 'run-started', runId, runDir: `/runs/${runId}`, plan, timeMs: 0 }),
  step: (step: number, loss: number, runId = 'r1'): TrainEvent => ({ type: 'step', runId, step, totalSteps: 3, loss, lr: 1e-3, tokPerSec: 500, timeMs: step }),
  finished: (ok: boolean, runId = 'r1', error?: string): TrainEvent => ({ type: 'run-finished', runId, runDir: `/runs/${runId}`, ok, error, timeMs: 9 }),
};
const event = (data: TrainEvent): Action => ({ type: 'event', message: { event: 'train-event', data } });
/** A state that has passed devices, model and data. */
function atTrain(): WizardState {
  const atPlan = run(
    initialState(),
    { type: 'devices-loaded', devices: [device('A'), device('B')] },
    { type: 'next' },
    { type: 'model-inspected', summary },
    { type: 'next' },
    { type: 'data-loaded', preview },
    { type: 'next' },
  );
  return run(atPlan, planLoaded(atPlan), { type: 'next' });
}

test('Next is blocked until each step is valid; Back is always allowed', () => {
  let s = initialState();
  assert.equal(s.step, 'devices');
  assert.match(blocker(s)!, /Select at least one ready phone/);
  s = reducer(s, { type: 'next' });
  assert.equal(s.step, 'devices', 'blocked');

  s = run(s, { type: 'devices-loaded', devices: [device('A')] }, { type: 'next' });
  assert.equal(s.step, 'model');
  assert.match(blocker(s)!, /Inspect the model/);
  s = run(s, { type: 'model-failed', error: 'config.json missing' }, { type: 'next' });
  assert.equal(s.step, 'model');
  assert.equal(s.model.error, 'config.json missing');
  s = run(s, { type: 'model-inspected', summary }, { type: 'next' });
  assert.equal(s.step, 'data');

  s = run(s, { type: 'data-loaded', preview: { ...preview, count: 0 } });
  assert.match(blocker(s)!, /no usable samples/);
  s = run(s, { type: 'data-loaded', preview }, { type: 'next' });
  assert.equal(s.step, 'plan');
  assert.match(blocker(s)!, /Working out the plan/);
  s = run(s, { type: 'plan-failed', key: currentPlanKey(s), error: 'the model does not fit on these 1 device(s)' }, { type: 'next' });
  assert.equal(s.step, 'plan');
  assert.match(blocker(s)!, /does not work out/);
  s = run(s, planLoaded(s, [false, true]));
  assert.match(blocker(s)!, /Over its memory budget: A/);
  s = run(s, planLoaded(s), { type: 'next' });
  assert.equal(s.step, 'train');
  assert.match(blocker(s)!, /Train for at least one step/);

  s = run(s, { type: 'back' }, { type: 'back' }, { type: 'back' }, { type: 'back' }, { type: 'back' });
  assert.equal(s.step, 'devices');
});

test('the step bar only jumps to steps whose predecessors are complete', () => {
  let s = initialState();
  assert.equal(canVisit(s, 'devices'), true);
  assert.equal(canVisit(s, 'model'), false);
  s = reducer(s, { type: 'go', step: 'train' });
  assert.equal(s.step, 'devices');
  s = atTrain();
  s = run(s, { type: 'go', step: 'devices' }, { type: 'go', step: 'data' });
  assert.equal(s.step, 'data');
  assert.equal(canVisit(s, 'export'), false);
  assert.equal(isDone(s, 'devices'), true);
  assert.equal(isDone(s, 'data'), false, 'the current step has no check mark');
  assert.equal(isDone(s, 'export'), false, 'never reached');
  s = reducer(s, { type: 'model-path', path: '/other' });
  assert.equal(isDone(s, 'model'), false, 'edited since: no longer complete');
});

test('device selection: ready phones auto-selected once, not-ready ones never, vanished ones dropped', () => {
  let s = reducer(initialState(), { type: 'devices-loaded', devices: [device('A'), device('X', 'unauthorized'), device('B')] });
  assert.deepEqual(s.devices.selected, ['A', 'B']);
  s = run(s, { type: 'device-toggled', id: 'A' }, { type: 'device-toggled', id: 'X' });
  assert.deepEqual(s.devices.selected, ['B']);
  s = reducer(s, { type: 'devices-loaded', devices: [device('A'), device('C')] });
  assert.deepEqual(s.devices.selected, [], 'B vanished; the user had made a choice, so nothing is auto-selected');
  s = reducer(s, { type: 'device-toggled', id: 'C' });
  assert.deepEqual(selectedReady(s), ['C']);
});

test('pushed device lists update the table like a poll; agent checks are kept per device', () => {
  let s = reducer(initialState(), { type: 'event', message: { event: 'devices', data: [device('A'), device('B', 'unauthorized')] } });
  assert.deepEqual(s.devices.list.map((d) => d.id), ['A', 'B']);
  assert.deepEqual(s.devices.selected, ['A'], 'a pushed list selects ready phones on first sight too');
  assert.equal(s.train.status, 'idle', 'a devices event is not a train event');
  s = run(s, { type: 'probe-started', id: 'A' }, { type: 'probe-failed', id: 'B', error: 'not ready' });
  assert.deepEqual(s.devices.probes.A, { status: 'probing' });
  const report = { abi: 'arm64-v8a', cpuThreads: 8, backends: ['cpu(neon x8)', 'opencl(Adreno 740)'], opencl: true, openclDeviceType: 'gpu' };
  s = reducer(s, { type: 'probe-done', id: 'A', report });
  assert.deepEqual(s.devices.probes.A, { status: 'done', report });
  assert.deepEqual(s.devices.probes.B, { status: 'failed', error: 'not ready' });
});

test('editing a path clears the previous inspection or preview', () => {
  let s = run(atTrain(), { type: 'model-path', path: '/other' });
  assert.equal(s.model.summary, null);
  assert.equal(s.model.path, '/other');
  assert.equal(canVisit(s, 'train'), false);
  s = run(s, { type: 'data-path', path: '/x.jsonl' });
  assert.equal(s.data.preview, null);
});

test('defaults fill only empty fields', () => {
  let s = reducer(initialState(), { type: 'model-path', path: '/typed' });
  s = reducer(s, { type: 'defaults-loaded', defaults: { modelPath: '/def/m', datasetPath: '/def/d.jsonl' } });
  assert.equal(s.model.path, '/typed');
  assert.equal(s.data.path, '/def/d.jsonl');
});

test('train events build the loss curve, device stats and final status', () => {
  let s = run(atTrain(), { type: 'train-starting' });
  assert.equal(s.train.status, 'starting');
  assert.match(blocker(s)!, /Training is running/);
  // run-started may arrive before the startTraining reply.
  s = run(s, event(ev.started()), { type: 'train-started', runId: 'r1' });
  assert.equal(s.train.runId, 'r1');
  assert.equal(s.train.status, 'running');
  assert.deepEqual(s.train.plan, plan);
  assert.equal(s.exporting.outDir, '/runs/r1/adapter-peft');

  s = run(
    s,
    event({ type: 'phase', runId: 'r1', phase: 'push', detail: 'stage 1 of 2', timeMs: 1 }),
    event(ev.step(1, 5.5)),
    event(ev.step(2, 5.1)),
    event({ type: 'device-step', runId: 'r1', step: 2, serial: 'A', busyMs: 120, rssBytes: 5e7, peakRssBytes: 6e7, bytesIn: 10, bytesOut: 20, timeMs: 2 }),
    event(ev.step(2, 5.0, 'some-other-run')),
  );
  assert.equal(s.train.phase, 'push');
  assert.deepEqual(s.train.lossSteps, [1, 2]);
  assert.deepEqual(s.train.losses, [5.5, 5.1]);
  assert.equal(s.train.tokPerSec, 500);
  assert.equal(s.train.devices.A?.busyMs, 120);

  // Push progress keeps the deployer's rate, time left and phase for the device card.
  s = run(s, event({ type: 'push-progress', runId: 'r1', serial: 'B', file: 'stage1.cfst', bytesSent: 3 * 2 ** 20, bytesTotal: 12 * 2 ** 20, bytesPerSec: 2 ** 20, etaMs: 9000, phase: 'pushing', timeMs: 3 }));
  assert.equal(formatPush(s.train.push.B!), 'sending stage1.cfst 25% · 1.0 MiB/s · 9.0 s left');
  s = run(s, event({ type: 'push-progress', runId: 'r1', serial: 'B', file: 'stage1.cfst', bytesSent: 0, bytesTotal: 12 * 2 ** 20, phase: 'skipped', timeMs: 4 }));
  assert.equal(formatPush(s.train.push.B!), 'stage1.cfst already on the phone');

  // A resume from checkpoint repeats step 2: the curve is replaced from there, not doubled back.
  s = run(s, event(ev.step(2, 5.2)), event(ev.step(3, 4.9)));
  assert.deepEqual(s.train.lossSteps, [1, 2, 3]);
  assert.deepEqual(s.train.losses, [5.5, 5.2, 4.9]);

  s = run(s, event(ev.finished(true)), { type: 'next' });
  assert.equal(s.train.status, 'finished');
  assert.equal(s.step, 'export');
});

test('before the reply, only a run-started event can claim the run', () => {
  let s = run(atTrain(), { type: 'train-starting' }, event(ev.step(1, 5, 'cli-run')));
  assert.equal(s.train.runId, null);
  assert.equal(s.train.losses.length, 0);
  s = run(s, { type: 'train-started', runId: 'r1' }, event(ev.started('r1')), event(ev.step(1, 5)));
  assert.equal(s.train.status, 'running');
  assert.deepEqual(s.train.losses, [5]);
});

test('stop, failure and start errors end in distinct, explained states', () => {
  const base = run(atTrain(), { type: 'train-starting' }, { type: 'train-started', runId: 'r1' });

  let s = run(base, event(ev.step(1, 5)), { type: 'train-stopping' }, event(ev.finished(false, 'r1', 'stopped')));
  assert.equal(s.train.status, 'stopped');
  assert.equal(s.train.error, null);
  assert.equal(blocker(s), null, 'a stopped run with steps can be exported');

  s = run(base, { type: 'train-stopping' }, event(ev.finished(false, 'r1', 'stopped')));
  assert.match(blocker(s)!, /at least one step/);

  s = run(base, event(ev.finished(false, 'r1', 'phone B disconnected: reconnect it and train again')));
  assert.equal(s.train.status, 'failed');
  assert.match(s.train.error!, /phone B disconnected/);

  s = run(atTrain(), { type: 'train-starting' }, { type: 'train-failed', error: 'no agent binary for arm64-v8a' });
  assert.equal(s.train.status, 'failed');
  assert.equal(s.train.runId, null);
});

test('starting again resets the live view but keeps the step count, weight format and clean-up choice', () => {
  assert.equal(atTrain().train.weightFormat, 'f32');
  assert.equal(atTrain().train.removeStageFiles, false);
  let s = run(atTrain(), { type: 'train-steps', text: '7' }, { type: 'train-weight-format', weightFormat: 'q4_0' },
    { type: 'train-remove-stage-files', remove: true }, { type: 'train-mode', mode: 'zo' }, { type: 'train-starting' }, { type: 'train-started', runId: 'r1' });
  s = run(s, event(ev.step(1, 5)), event(ev.finished(true)), { type: 'train-starting' });
  assert.equal(s.train.stepsText, '7');
  assert.equal(s.train.weightFormat, 'q4_0');
  assert.equal(s.train.removeStageFiles, true);
  assert.equal(s.train.mode, 'zo');
  assert.deepEqual(s.train.losses, []);
  assert.equal(s.train.runId, null);
  // While running, a second start is ignored.
  const again = reducer(s, { type: 'train-starting' });
  assert.equal(again, s);
});

test('export and try-it results', () => {
  let s = run(atTrain(), { type: 'train-starting' }, { type: 'train-started', runId: 'r1' }, event(ev.started()), event(ev.step(1, 5)), event(ev.finished(true)));
  s = run(s, { type: 'next' }, { type: 'export-busy' }, { type: 'export-done', outDir: '/runs/r1/adapter-peft' });
  assert.equal(s.exporting.result, '/runs/r1/adapter-peft');
  s = run(s, { type: 'export-dir', outDir: '/elsewhere' });
  assert.equal(s.exporting.result, null, 'a new folder means not exported there yet');
  s = run(s, { type: 'next' });
  assert.equal(s.step, 'try');
  s = run(s, { type: 'try-busy' }, { type: 'try-failed', error: 'model not loaded' });
  assert.equal(s.tryIt.error, 'model not loaded');
  s = run(s, { type: 'try-busy' }, { type: 'try-done', text: ' there was a cat' });
  assert.equal(s.tryIt.text, ' there was a cat');
  assert.equal(s.tryIt.error, null);
});

test('parseWhole accepts only whole numbers in range', () => {
  assert.equal(parseWhole('20', 1, 100), 20);
  assert.equal(parseWhole(' 3 ', 1, 100), 3);
  for (const bad of ['', '0', '101', '2.5', '-1', '1e2', 'abc', '99999999999999999999']) {
    assert.equal(parseWhole(bad, 1, 100), null, bad);
  }
});

test('parseDecimal accepts plain decimals in range; sampling fields keep what the user typed', () => {
  assert.equal(parseDecimal('0', 0, 2), 0);
  assert.equal(parseDecimal('0.7', 0, 2), 0.7);
  assert.equal(parseDecimal('.9', 0.01, 1), 0.9);
  for (const bad of ['', '2.5', '-0.1', '1e-3', 'abc', '0.5.1']) assert.equal(parseDecimal(bad, 0, 2), null, bad);
  let s = reducer(initialState(), { type: 'try-sampling', temperatureText: '0.8' });
  s = reducer(s, { type: 'try-sampling', topPText: '0.5' });
  assert.deepEqual([s.tryIt.temperatureText, s.tryIt.topPText], ['0.8', '0.5']);
});

test('a re-opened past run lands on Train as finished, and Export and Try it open without the earlier steps', () => {
  let s = reducer(initialState(), { type: 'runs-toggled' });
  assert.equal(s.runs.open, true);
  assert.equal(canVisit(s, 'export'), false, 'no run yet');
  s = reducer(s, { type: 'runs-loaded', list: [{ runId: 'r9', runDir: '/runs/r9', createdMs: 1, status: 'finished', steps: 3, finalLoss: 1.2, evalLossBefore: 1.6, evalLossAfter: 1.5 }] });
  assert.equal(s.runs.list.length, 1);
  const plan: TrainPlan = { stages: [], microBatches: 4, microBatchSize: 2, seqLen: 64 };
  s = reducer(s, { type: 'run-opened', run: {
    runId: 'r9', runDir: '/runs/r9', createdMs: 1, status: 'finished', error: null, modelDir: '/m', datasetPath: '/d', plan, steps: 3,
    losses: [2, 1.5, 1.2], tokPerSec: 900, evalLossBefore: 1.6, evalLossAfter: 1.5, heldOutLossOrt: null, samplesBefore: [], samplesAfter: [],
  } });
  assert.equal(s.step, 'train');
  assert.equal(s.runs.open, false);
  assert.deepEqual([s.train.status, s.train.runId, s.train.losses, s.train.lossSteps, s.train.evalAfter], ['finished', 'r9', [2, 1.5, 1.2], [1, 2, 3], 1.5]);
  assert.equal(canVisit(s, 'export'), true);
  assert.equal(canVisit(s, 'try'), true);
  assert.equal(canVisit(s, 'data'), false, 'the wizard steps before still need their own inputs');
  // A failed run opens as failed, with its error, and does not unlock Export.
  s = reducer(s, { type: 'run-opened', run: { runId: 'r8', runDir: '/runs/r8', createdMs: 0, status: 'failed', error: 'phone vanished', modelDir: null, datasetPath: null,
    plan: null, steps: 1, losses: [2], tokPerSec: null, evalLossBefore: null, evalLossAfter: null, heldOutLossOrt: null, samplesBefore: [], samplesAfter: [] } });
  assert.deepEqual([s.train.status, s.train.error], ['failed', 'phone vanished']);
  assert.equal(canVisit(s, 'export'), false);
});

/** A running run r1 on the two-stage plan, ready for live events. */
const running = () => run(atTrain(), { type: 'train-starting' }, event(ev.started()), { type: 'train-started', runId: 'r1' });
const span = (stage: number, kind: 'F' | 'B', micro: number, startMs: number, endMs: number) =>
  ({ stage, serial: stage === 0 ? 'A' : 'B', kind, micro, startMs, endMs }) as const;
const timeline = (step: number, spans: ReturnType<typeof span>[], runId = 'r1'): TrainEvent =>
  ({ type: 'timeline', runId, step, gradNorm: 1, relayBytes: 0, spans, timeMs: step });

test('the pipeline timeline keeps only the latest step, and ignores other runs', () => {
  let s = running();
  assert.equal(s.train.timeline, null);
  const first = [span(0, 'F', 0, 100, 110), span(1, 'F', 0, 112, 120), span(1, 'B', 0, 120, 140), span(0, 'B', 0, 142, 160)];
  const second = [span(0, 'F', 0, 300, 305), span(1, 'B', 0, 310, 330)];
  s = run(s, event(timeline(1, first)), event(timeline(2, second)), event(timeline(9, first, 'some-other-run')));
  assert.deepEqual(s.train.timeline, { step: 2, spans: second });
  // A new run starts with an empty Gantt, not the last run's.
  s = run(s, event(ev.finished(true)), { type: 'train-starting' });
  assert.equal(s.train.timeline, null);
});

test('step events build the tokens/s curve (a resumed step replaces the tail) and carry ETA and step time', () => {
  const step = (n: number, tokPerSec: number, etaMs?: number): TrainEvent =>
    ({ type: 'step', runId: 'r1', step: n, totalSteps: 3, loss: 5, lr: 1e-3, tokPerSec, timeMs: n, stepMs: 400, etaMs });
  let s = run(running(), event(step(1, 100, 800)), event(step(2, 120, 400)));
  assert.deepEqual(s.train.tokSteps, [1, 2]);
  assert.deepEqual(s.train.tokPerSecs, [100, 120]);
  assert.equal(s.train.etaMs, 400);
  assert.equal(s.train.stepMs, 400);
  s = run(s, event(step(2, 90)), event(step(3, 110, 0)));
  assert.deepEqual(s.train.tokSteps, [1, 2, 3]);
  assert.deepEqual(s.train.tokPerSecs, [100, 90, 110]);
  assert.equal(s.train.etaMs, 0);
});

test('planned memory per phone comes from the planning phase, and a re-plan replaces it', () => {
  const phase = (phaseName: string, data?: unknown): TrainEvent => ({ type: 'phase', runId: 'r1', phase: phaseName, detail: '', timeMs: 1, data });
  let s = run(running(), event(phase('planning', { predictedStepMs: 400, predictedBytes: [{ serial: 'A', bytes: 88 * 2 ** 20 }, { serial: 'B', bytes: 2e7 }] })));
  assert.deepEqual(s.train.plannedBytes, { A: 88 * 2 ** 20, B: 2e7 });
  // Other phases (and malformed entries) leave it alone.
  s = run(s, event(phase('measured', { predictedBytes: [{ serial: 'A', bytes: 1 }] })), event(phase('push')));
  assert.deepEqual(s.train.plannedBytes, { A: 88 * 2 ** 20, B: 2e7 });
  s = run(s, event(phase('planning', { predictedBytes: [{ serial: 'A', bytes: 3e7 }, { serial: 7, bytes: 'x' }] })));
  assert.deepEqual(s.train.plannedBytes, { A: 3e7 });
  s = run(s, event(phase('planning', 'no numbers')));
  assert.deepEqual(s.train.plannedBytes, { A: 3e7 });
});
