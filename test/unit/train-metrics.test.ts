// DeviceMeter (train/metrics.ts): cumulative STATS -> per-step device-step events, busy time per backend and the
// temperature included, against differences worked out by hand; an older agent's STATS gives the old event; etaMs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceMeter, etaMs, type MeteredAgent } from '../../electron/core/train/metrics.js';
import type { StatsReply } from '../../electron/core/protocol/messages.js';

/** An agent whose STATS replies are the given ones, in order. */
function scripted(serial: string, replies: StatsReply[]): MeteredAgent {
  let i = 0;
  return { serial, client: { stats: async () => replies[Math.min(i++, replies.length - 1)]! } };
}

const base: StatsReply = { rssBytes: 50e6, peakRssBytes: 60e6, busyUs: 0, forwardCount: 0, backwardCount: 0, bytesIn: 0, bytesOut: 0 };

test('per-step busy, per-backend busy, idle, bytes and temperature are the differences of cumulative STATS', async () => {
  const phone = scripted('R58N', [
    { ...base, busyUs: 1_000_000, primaryBusyUs: 900_000, secondaryBusyUs: 300_000, bytesIn: 1000, bytesOut: 2000, temperatureMillicelsius: 41_000, temperatureZone: 'cpu-1-4-usr' },
    { ...base, busyUs: 1_750_000, primaryBusyUs: 1_350_000, secondaryBusyUs: 700_000, bytesIn: 1600, bytesOut: 2900, rssBytes: 70e6, peakRssBytes: 80e6, temperatureMillicelsius: 47_250, temperatureZone: 'gpuss-0-usr' },
    { ...base, busyUs: 2_000_000, primaryBusyUs: 1_600_000, secondaryBusyUs: 700_000, bytesIn: 1700, bytesOut: 3000, rssBytes: 65e6, peakRssBytes: 80e6 },
  ]);
  const meter = new DeviceMeter();
  await meter.baseline([phone]);
  const [s1] = await meter.step([phone], 'run', 1, 1000);
  const { timeMs, ...rest } = s1!;
  assert.ok(timeMs > 0);
  assert.deepEqual(rest, {
    type: 'device-step', runId: 'run', step: 1, serial: 'R58N',
    busyMs: 750, idleMs: 250, rssBytes: 70e6, peakRssBytes: 80e6, bytesIn: 600, bytesOut: 900,
    // OpenCL ran beside the CPU: 450 + 400 > 750.
    busyByBackendMs: { cpu: 450, opencl: 400 },
    temperatureC: 47.25, temperatureZone: 'gpuss-0-usr',
  });
  // A step without OpenCL work and a phone whose zones could not be read this time; busier than the step: idle 0.
  const [s2] = await meter.step([phone], 'run', 2, 200);
  assert.deepEqual(s2!.busyByBackendMs, { cpu: 250, opencl: 0 });
  assert.equal(s2!.busyMs, 250);
  assert.equal(s2!.idleMs, 0);
  assert.equal(s2!.temperatureC, null);
  assert.equal('temperatureZone' in s2!, false);
  assert.equal(meter.peakRssBytes.get('R58N'), 80e6);
});

test('without a baseline the first step counts from the agent\'s start; reset forgets the counters', async () => {
  const meter = new DeviceMeter();
  const a = scripted('A', [{ ...base, busyUs: 5000, primaryBusyUs: 4000, secondaryBusyUs: 2000, temperatureMillicelsius: -5250, temperatureZone: 'skin-therm' }]);
  const [e] = await meter.step([a], 'r', 1, 10);
  assert.deepEqual(e!.busyByBackendMs, { cpu: 4, opencl: 2 });
  assert.equal(e!.temperatureC, -5.25);
  meter.reset();
  const fresh = scripted('A', [{ ...base, busyUs: 1000, primaryBusyUs: 1000, secondaryBusyUs: 0 }]);
  const [f] = await meter.step([fresh], 'r', 2, 10);
  assert.deepEqual(f!.busyByBackendMs, { cpu: 1, opencl: 0 });
});

test('an agent without the per-backend fields gives the event without them (not zeros)', async () => {
  const old = scripted('old', [{ ...base, busyUs: 1000 }, { ...base, busyUs: 3000 }]);
  const meter = new DeviceMeter();
  await meter.baseline([old]);
  const [e] = await meter.step([old], 'r', 1, 5);
  assert.equal(e!.busyMs, 2);
  assert.equal('busyByBackendMs' in e!, false);
  assert.equal('temperatureC' in e!, false);
});

test('ETA: mean step time so far times the steps left', () => {
  assert.equal(etaMs(3000, 3, 7), 7000);
  assert.equal(etaMs(0, 0, 5), null);
});
