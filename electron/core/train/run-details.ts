// Past runs from their folders (runs/<id>/run.json): the runs list and one run's details, so the app can re-open a
// run after a restart and export or try its adapter. Reads what train/job.ts wrote; tolerant of runs written by
// older versions (missing fields become null) and of folders that are not runs (skipped in the list).
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunDetails, RunSummary } from '../api/contract.js';
import type { TrainPlan } from '../api/types.js';

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** A run id is a folder name written by RunFolder: never a path. */
export function checkRunId(runId: string): void {
  if (!/^[\w.-]+$/.test(runId) || runId === '.' || runId === '..') throw new Error(`"${runId}" is not a run id`);
}

/** The run's creation time: from its id (an ISO timestamp with - for :) or, failing that, the folder's mtime. */
async function createdMs(runId: string, runDir: string): Promise<number> {
  const t = Date.parse(runId.slice(0, 24).replace(/T(\d\d)-(\d\d)-(\d\d)-(\d+)Z/, 'T$1:$2:$3.$4Z'));
  return Number.isNaN(t) ? (await stat(runDir)).mtimeMs : t;
}

export async function readRunDetails(runsDir: string, runId: string): Promise<RunDetails> {
  checkRunId(runId);
  const runDir = join(runsDir, runId);
  const path = join(runDir, 'run.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it has no run.json' : `run.json cannot be read: ${(err as Error).message}`;
    throw new Error(`${runDir} is not a readable run: ${why}`);
  }
  const losses = Array.isArray(raw.losses) ? raw.losses.filter((l): l is number => typeof l === 'number') : [];
  const ort = raw.heldOutLossOrt as { before?: unknown; after?: unknown } | undefined;
  const model = raw.model as { dir?: unknown } | undefined;
  const dataset = raw.dataset as { path?: unknown } | undefined;
  return {
    runId,
    runDir,
    createdMs: await createdMs(runId, runDir),
    status: str(raw.status) ?? 'unknown',
    error: str(raw.error),
    modelDir: str(model?.dir),
    datasetPath: str(dataset?.path),
    plan: (raw.plan as TrainPlan | undefined) ?? null,
    steps: num(raw.steps) ?? losses.length,
    losses,
    tokPerSec: num(raw.tokPerSec),
    evalLossBefore: num(raw.evalLossBefore),
    evalLossAfter: num(raw.evalLossAfter),
    heldOutLossOrt: ort && num(ort.before) !== null && num(ort.after) !== null ? { before: num(ort.before)!, after: num(ort.after)! } : null,
    samplesBefore: strings(raw.samplesBefore),
    samplesAfter: strings(raw.samplesAfter),
  };
}

/** Every run in `runsDir`, newest first; folders without a readable run.json are left out. */
export async function listRunSummaries(runsDir: string): Promise<RunSummary[]> {
  const names = await readdir(runsDir).catch(() => [] as string[]);
  const runs: RunSummary[] = [];
  for (const runId of names) {
    const d = await readRunDetails(runsDir, runId).catch(() => null);
    if (!d) continue;
    runs.push({ runId, runDir: d.runDir, createdMs: d.createdMs, status: d.status, steps: d.steps, finalLoss: d.losses.at(-1) ?? null, evalLossBefore: d.evalLossBefore, evalLossAfter: d.evalLossAfter });
  }
  return runs.sort((a, b) => b.createdMs - a.createdMs);
}
