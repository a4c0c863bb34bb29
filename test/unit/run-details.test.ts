// Past runs read back from their folders (electron/core/train/run-details.ts): the list is newest first and skips
// folders that are not runs; details come from run.json, with missing fields as null (runs of older versions).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listRunSummaries, readRunDetails } from '../../electron/core/train/run-details.js';

async function run(runsDir: string, id: string, json: unknown): Promise<void> {
  await mkdir(join(runsDir, id), { recursive: true });
  await writeFile(join(runsDir, id, 'run.json'), typeof json === 'string' ? json : JSON.stringify(json));
}

test('runs are listed newest first with their outcome; non-runs are skipped; details fill what run.json has', async () => {
  const runsDir = await mkdtemp(join(tmpdir(), 'confidant-runs-'));
  try {
    const plan = { stages: [], microBatches: 4, microBatchSize: 2, seqLen: 64 };
    await run(runsDir, '2026-11-20T10-00-00-000Z-aaaaaa', { status: 'finished', steps: 3, losses: [2, 1.5, 1.2], evalLossBefore: 1.65, evalLossAfter: 1.5,
      heldOutLossOrt: { before: 1.65001, after: 1.50002 }, plan, model: { dir: '/m' }, dataset: { path: '/d.txt' }, tokPerSec: 2000, samplesBefore: ['Lily'], samplesAfter: ['Zara'] });
    await run(runsDir, '2026-11-21T09-30-00-000Z-bbbbbb', { status: 'failed', error: 'phone vanished', losses: [2.1] });
    await run(runsDir, '2026-11-19T08-00-00-000Z-cccccc', { losses: [3] }); // an older run.json: no status
    await run(runsDir, 'broken', '{not json');
    await mkdir(join(runsDir, 'empty-folder'));

    const list = await listRunSummaries(runsDir);
    assert.deepEqual(list.map((r) => r.runId), ['2026-11-21T09-30-00-000Z-bbbbbb', '2026-11-20T10-00-00-000Z-aaaaaa', '2026-11-19T08-00-00-000Z-cccccc']);
    assert.deepEqual(list.map((r) => r.status), ['failed', 'finished', 'unknown']);
    assert.equal(list[1]!.createdMs, Date.parse('2026-11-20T10:00:00.000Z'));
    assert.deepEqual([list[1]!.steps, list[1]!.finalLoss, list[1]!.evalLossBefore, list[1]!.evalLossAfter], [3, 1.2, 1.65, 1.5]);
    assert.deepEqual([list[2]!.steps, list[2]!.evalLossAfter], [1, null], 'steps fall back to the losses recorded');

    const d = await readRunDetails(runsDir, '2026-11-20T10-00-00-000Z-aaaaaa');
    assert.deepEqual(
      { status: d.status, modelDir: d.modelDir, datasetPath: d.datasetPath, plan: d.plan, ort: d.heldOutLossOrt, tok: d.tokPerSec, after: d.samplesAfter },
      { status: 'finished', modelDir: '/m', datasetPath: '/d.txt', plan, ort: { before: 1.65001, after: 1.50002 }, tok: 2000, after: ['Zara'] },
    );
    assert.equal((await readRunDetails(runsDir, '2026-11-21T09-30-00-000Z-bbbbbb')).error, 'phone vanished');
    await assert.rejects(readRunDetails(runsDir, 'broken'), /broken is not a readable run: run\.json cannot be read/);
    await assert.rejects(readRunDetails(runsDir, 'empty-folder'), /is not a readable run: it has no run\.json/);
    await assert.rejects(readRunDetails(runsDir, '../etc'), /"\.\.\/etc" is not a run id/);
    assert.deepEqual(await listRunSummaries(join(runsDir, 'no-such-folder')), []);
  } finally {
    await rm(runsDir, { recursive: true, force: true });
  }
});
