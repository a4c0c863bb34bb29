// The user's pause (electron/core/train/pause-gate.ts): an open gate lets the job through at once; a held one waits
// until released, pinging the agents meanwhile; Stop ends the wait; a failed ping (a phone gone) ends it with that error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PauseGate } from '../../electron/core/train/pause-gate.js';

test('an open gate does not wait; set reports whether it changed', async () => {
  const g = new PauseGate();
  let pings = 0;
  await g.wait(undefined, async () => pings++, 5);
  assert.equal(pings, 0);
  assert.equal(g.set(false), false);
  assert.equal(g.set(true), true);
  assert.equal(g.set(true), false);
  assert.equal(g.isPaused, true);
});

test('a held gate waits until released and keeps the agents alive meanwhile', async () => {
  const g = new PauseGate();
  g.set(true);
  let pings = 0;
  let done = false;
  const waiting = g.wait(undefined, async () => pings++, 10).then(() => (done = true));
  await sleep(80);
  assert.equal(done, false);
  assert.ok(pings >= 3, `${pings} keep-alive pings in 80 ms at 10 ms`);
  g.set(false);
  await waiting;
  assert.equal(done, true);
});

test('Stop ends a held wait; a failed keep-alive ends it with its error', async () => {
  const g = new PauseGate();
  g.set(true);
  const abort = new AbortController();
  const waiting = g.wait(abort.signal, async () => undefined, 60_000);
  abort.abort();
  await waiting; // resolves: the job then sees the abort and stops
  assert.equal(g.isPaused, true);
  await assert.rejects(g.wait(undefined, async () => Promise.reject(new Error('agent on p1 ended')), 5), /agent on p1 ended/);
});
