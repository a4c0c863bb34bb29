// The Plan step's state (renderer/plan-state.ts through the wizard reducer): moving layers across a boundary keeps
// the layout contiguous and never empties a stage, an edit turns re-planning off and re-asks the core (the key
// changes), a new device selection drops the edit; and the Train step's pause and hold events, the applied head
// splits and busy shares folded from the run's events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moveLayer, planKey } from '../../renderer/plan-state.js';
import { currentPlanKey, headSplitsOf, initialState, isTraining, reducer, type Action, type WizardState } from '../../renderer/state.js';
import type { DeviceInfo, TrainEvent } from '../../electron/core/api/types.js';
import { planLoaded } from '../support/renderer-fixtures.js';

const L = (serial: string, layerStart: number, layerEnd: number) => ({ serial, layerStart, layerEnd });
const run = (s: WizardState, ...actions: Action[]) => actions.reduce(reducer, s);

test('moveLayer moves one layer across the boundary with the next stage (the last stage: the previous one)', () => {
  const three = [L('a', 0, 2), L('b', 2, 4), L('c', 4, 5)];
  assert.deepEqual(moveLayer(three, 0, 1), [L('a', 0, 3), L('b', 3, 4), L('c', 4, 5)]);
  assert.deepEqual(moveLayer(three, 1, -1), [L('a', 0, 2), L('b', 2, 3), L('c', 3, 5)]);
  assert.deepEqual(moveLayer(three, 2, 1), [L('a', 0, 2), L('b', 2, 3), L('c', 3, 5)], 'the last stage grows backwards');
  assert.equal(moveLayer(three, 2, -1), null, 'c would be left without layers');
  assert.equal(moveLayer(three, 1, 1), null, 'c has only one layer to give');
  assert.equal(moveLayer([L('a', 0, 5)], 0, 1), null, 'one stage has nothing to trade with');
  assert.equal(moveLayer(three, 3, 1), null);
  assert.deepEqual(three, [L('a', 0, 2), L('b', 2, 4), L('c', 4, 5)], 'the input is not changed');
  // Any sequence of accepted moves keeps the stages contiguous, non-empty and covering [0, 5).
  let layout = three;
  for (let i = 0; i < 200; i++) {
    const next = moveLayer(layout, (i * 7) % 3, i % 3 === 0 ? -1 : 1);
    if (!next) continue;
    layout = next;
    assert.equal(layout[0]!.layerStart, 0);
    assert.equal(layout[2]!.layerEnd, 5);
    for (let k = 0; k < 3; k++) assert.ok(layout[k]!.layerEnd > layout[k]!.layerStart);
    for (let k = 1; k < 3; k++) assert.equal(layout[k]!.layerStart, layout[k - 1]!.layerEnd);
  }
});

function device(serial: string): DeviceInfo {
  return {
    id: serial, server: '127.0.0.1:5037', serial, state: 'device', guidance: '', manufacturer: 'Confidant', model: 'Virtual', androidVersion: '14', soc: 'x86_64',
    abis: ['x86_64'], ramTotalBytes: 4 << 30, ramAvailableBytes: 3 << 30, cpuCores: 4, cpuMaxFreqsKHz: [], batteryPercent: 90, batteryCharging: false, temperatureC: 31,
    thermalZones: [], virtual: true,
  };
}

test('an edit changes the plan key (the step asks again), turns re-planning off; Reset and a new selection drop it', () => {
  let s = run(initialState(), { type: 'devices-loaded', devices: [device('A'), device('B')] });
  s = run(s, planLoaded(s));
  const before = currentPlanKey(s);
  assert.equal(s.plan.replan, true);
  s = reducer(s, { type: 'plan-layer-moved', index: 0, delta: -1 });
  assert.deepEqual(s.plan.layout, [L('A', 0, 2), L('B', 2, 5)]);
  assert.equal(s.plan.replan, false, 'hand-placed layers are kept by the run');
  assert.notEqual(currentPlanKey(s), before);
  assert.equal(s.plan.previewKey, before, 'the shown numbers are for the old split until the core answers');
  s = reducer(s, { type: 'plan-replan', replan: true });
  assert.equal(s.plan.replan, true);
  s = reducer(s, { type: 'plan-reset' });
  assert.equal(s.plan.layout, null);
  assert.equal(currentPlanKey(s), before);
  s = run(s, { type: 'plan-layer-moved', index: 1, delta: 1 }, { type: 'device-toggled', id: 'B' });
  assert.equal(s.plan.layout, null, 'another set of phones starts from a new suggestion');
  // A method or format change keeps the split but needs new numbers.
  s = run(s, { type: 'device-toggled', id: 'B' }, { type: 'plan-layer-moved', index: 0, delta: 1 });
  const edited = currentPlanKey(s);
  s = reducer(s, { type: 'train-weight-format', weightFormat: 'q4_0' });
  assert.ok(s.plan.layout);
  assert.notEqual(currentPlanKey(s), edited);
  assert.equal(planKey({ modelPath: 'm', serials: ['A'], mode: 'zo', weightFormat: 'f32', seqLen: null, layout: null }), planKey({ modelPath: 'm', serials: ['A'], mode: 'zo', weightFormat: 'f32', seqLen: null, layout: null }));
});

const evt = (data: TrainEvent): Action => ({ type: 'event', message: { event: 'train-event', data } });

test('pause: requested, confirmed by the hold event, resumed; Stop while paused; still counts as training', () => {
  let s = run(initialState(), { type: 'train-starting' }, evt({ type: 'run-started', runId: 'r', runDir: '/r', plan: { stages: [], microBatches: 4, microBatchSize: 1, seqLen: 8 }, timeMs: 0 }), { type: 'train-started', runId: 'r' });
  assert.equal(s.train.status, 'running');
  s = reducer(s, { type: 'train-pausing' });
  assert.equal(s.train.status, 'pausing');
  s = reducer(s, evt({ type: 'hold', runId: 'r', step: 4, paused: true, timeMs: 1 }));
  assert.equal(s.train.status, 'paused');
  assert.match(s.train.phaseDetail, /before step 4/);
  assert.equal(isTraining(s.train), true, 'a paused run still holds the phones: Next stays blocked');
  s = reducer(s, evt({ type: 'phase', runId: 'r', phase: 'checkpoint', detail: 'step 3', timeMs: 2 }));
  assert.equal(s.train.phase, 'Paused', 'a late phase does not hide the pause');
  s = reducer(s, { type: 'train-resuming' });
  assert.equal(s.train.status, 'running');
  s = run(s, { type: 'train-pausing' }, { type: 'train-pause-failed', error: 'run r is not training' });
  assert.equal(s.train.status, 'running');
  assert.equal(s.train.error, 'run r is not training');
  s = run(s, { type: 'train-pausing' }, evt({ type: 'hold', runId: 'r', step: 5, paused: true, timeMs: 3 }), { type: 'train-stopping' });
  assert.equal(s.train.status, 'stopping', 'Stop works on a paused run');
  s = reducer(s, evt({ type: 'run-finished', runId: 'r', runDir: '/r', ok: false, error: 'training was stopped', timeMs: 4 }));
  assert.equal(s.train.status, 'stopped');
  assert.equal(s.train.error, null, 'a stop is not a failure');
});

test('head splits from the planning phase: applied ones with their GPU, refused ones as CPU with the reason; junk ignored', () => {
  const splits = headSplitsOf({
    headSplits: [
      { serial: 'p1', gpuKvGroups: 2, gpuMlpCols: 256, applied: true, secondary: 'Adreno 740' },
      { serial: 'p2', gpuKvGroups: 1, gpuMlpCols: 64, applied: false, why: 'predicted gain 3% is below 10%' },
      { serial: 'p3', gpuKvGroups: -1, gpuMlpCols: 'x', applied: true },
      { gpuKvGroups: 1 },
    ],
  });
  assert.deepEqual(splits, {
    p1: { gpuKvGroups: 2, gpuMlpCols: 256, secondary: 'Adreno 740', why: null },
    p2: { gpuKvGroups: 0, gpuMlpCols: 0, secondary: null, why: 'predicted gain 3% is below 10%' },
    p3: { gpuKvGroups: 0, gpuMlpCols: 0, secondary: null, why: null },
  });
  assert.deepEqual(headSplitsOf(null), {});
  assert.deepEqual(headSplitsOf({ headSplits: 'no' }), {});
});

test('busy share per phone comes from busy and idle time of its step', () => {
  let s = run(initialState(), { type: 'train-starting' }, evt({ type: 'run-started', runId: 'r', runDir: '/r', plan: { stages: [], microBatches: 4, microBatchSize: 1, seqLen: 8 }, timeMs: 0 }));
  s = reducer(s, evt({ type: 'device-step', runId: 'r', step: 1, serial: 'p1', busyMs: 30, idleMs: 90, rssBytes: 1, peakRssBytes: 2, bytesIn: 0, bytesOut: 0, timeMs: 1 }));
  assert.equal(s.train.devices.p1!.busyFraction, 0.25);
  s = reducer(s, evt({ type: 'device-step', runId: 'r', step: 2, serial: 'p1', busyMs: 30, rssBytes: 1, peakRssBytes: 2, bytesIn: 0, bytesOut: 0, timeMs: 2 }));
  assert.equal(s.train.devices.p1!.busyFraction, null, 'no idle time reported: no share shown');
});
