// Runs packStage (stage-pack.ts) in a worker thread, so quantising a large model (CPU-bound, minutes for billions
// of weights) does not block the event loop of the orchestrator or the Electron main process. The same module is
// the worker's entry point: loaded with the job in workerData it packs and reports back; imported normally it only
// exports packStageInWorker. The result, errors (same message) and progress are those of packStage.
import { Worker, parentPort, workerData } from 'node:worker_threads';
import { packStage, type PackOptions, type PackProgress, type PackResult, type StageSpec } from './stage-pack.js';
import type { ModelFolder } from './model-folder.js';

const JOB_MARK = 'confidant.pack-stage.v1';

interface PackJob {
  mark: typeof JOB_MARK;
  folder: string;
  spec: StageSpec;
  outPath: string;
  opts: Omit<PackOptions, 'onProgress' | 'signal'>;
}

type WorkerMessage =
  | { type: 'progress'; progress: PackProgress }
  | { type: 'done'; result: PackResult }
  | { type: 'error'; message: string; stack?: string; name?: string };

/**
 * packStage in a fresh worker thread. `folder` may be an opened ModelFolder (its directory is reopened in the
 * worker). onProgress runs on the calling thread; aborting `signal` stops the worker between chunks and removes
 * the partial file, then rejects with the abort reason.
 */
export function packStageInWorker(folder: string | ModelFolder, spec: StageSpec, outPath: string, opts: PackOptions = {}): Promise<PackResult> {
  const { onProgress, signal, ...rest } = opts;
  signal?.throwIfAborted();
  const job: PackJob = { mark: JOB_MARK, folder: typeof folder === 'string' ? folder : folder.dir, spec, outPath, opts: rest };
  return new Promise<PackResult>((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    let settled = false;
    const onAbort = (): void => worker.postMessage({ type: 'abort' });
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') onProgress?.(m.progress);
      else if (m.type === 'done') settle(() => resolve(m.result));
      else {
        const err = signal?.aborted ? signal.reason : Object.assign(new Error(m.message), m.stack ? { stack: m.stack } : {});
        settle(() => reject(err));
      }
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) => settle(() => reject(new Error(`stage pack worker exited with code ${code} before finishing ${outPath}`))));
  });
}

async function runJob(job: PackJob): Promise<void> {
  const port = parentPort!;
  const abort = new AbortController();
  const onMessage = (m: { type?: string }): void => {
    if (m?.type === 'abort') abort.abort(new Error('stage pack aborted'));
  };
  port.on('message', onMessage);
  try {
    const result = await packStage(job.folder, job.spec, job.outPath, {
      ...job.opts,
      signal: abort.signal,
      onProgress: (progress) => port.postMessage({ type: 'progress', progress } satisfies WorkerMessage),
    });
    port.postMessage({ type: 'done', result } satisfies WorkerMessage);
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    port.postMessage({ type: 'error', message: e.message, stack: e.stack, name: e.name } satisfies WorkerMessage);
  } finally {
    port.off('message', onMessage); // nothing keeps the worker alive now: it exits
  }
}

const data = workerData as Partial<PackJob> | null | undefined;
if (parentPort && data && typeof data === 'object' && data.mark === JOB_MARK) void runJob(data as PackJob);
