// The terminal lines `confidant train` prints for a file push: the reports file-sync.ts sends for one push (checking,
// pushing, verifying, done; every report after the last chunk has bytesSent === bytesTotal) give one "pushed" line,
// and a file skipped because the phone already holds it gives none (the job prints a 'phase' line for that).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { printEvent } from '../../electron/cli/progress.js';
import type { TrainEvent } from '../../electron/core/api/types.js';

function printed(events: TrainEvent[]): string[] {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    for (const e of events) printEvent(e, false);
  } finally {
    console.log = log;
  }
  return lines;
}

const push = (phase: string, bytesSent: number): TrainEvent => ({
  type: 'push-progress', runId: 'r', serial: 'emulator-5554', file: 'agent', bytesSent, bytesTotal: 2 ** 20, phase, attempt: 1, timeMs: 0,
});

test('one push prints one line, when the file is verified on the phone', () => {
  const lines = printed([push('checking', 0), push('pushing', 2 ** 19), push('pushing', 2 ** 20), push('verifying', 2 ** 20), push('done', 2 ** 20)]);
  assert.deepEqual(lines, ['  pushed agent to emulator-5554 (1.0 MiB)']);
});

test('a skipped file prints no "pushed" line', () => {
  assert.deepEqual(printed([push('checking', 0), push('skipped', 2 ** 20)]), []);
});

test('--json prints every event but push progress as JSON lines', () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    printEvent(push('done', 2 ** 20), true);
    printEvent({ type: 'phase', runId: 'r', phase: 'deploy', detail: 'x', timeMs: 1 }, true);
  } finally {
    console.log = log;
  }
  assert.deepEqual(lines.map((l) => JSON.parse(l) as unknown), [{ type: 'phase', runId: 'r', phase: 'deploy', detail: 'x', timeMs: 1 }]);
});
