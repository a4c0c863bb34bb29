// Runs an ONNX model with onnxruntime-node in a worker thread (session.run blocks its thread), one run at a time,
// and starts/stops that worker (also for OrtLanguageModel). Not a graph builder (llama-graph.ts) and not a
// scheduler: callers await each run.
import { Worker } from 'node:worker_threads';
import type { FromWorker, OrtElem, OrtSessionSettings, OrtTensorMsg, ToWorker } from './ort-messages.js';

export type { OrtSessionSettings };

export type OrtInput =
  | { type: 'float32'; dims: number[]; data: Float32Array }
  | { type: 'int64'; dims: number[]; data: BigInt64Array }
  | { type: 'int32'; dims: number[]; data: Int32Array };

export interface OrtOutput {
  type: OrtElem;
  dims: number[];
  data: Float32Array | BigInt64Array | Int32Array;
}

export interface OrtRunResult {
  outputs: Record<string, OrtOutput>;
  /** Time inside session.run on the worker, excluding message passing and tensor copies. */
  runMs: number;
}

function toMsg(t: OrtInput): OrtTensorMsg {
  // Copy: the caller keeps its array, and the copy is transferred to the worker without a second copy.
  const data = t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength) as ArrayBuffer;
  return { type: t.type, dims: [...t.dims], data };
}

function fromMsg(m: OrtTensorMsg): OrtOutput {
  const data = m.type === 'float32' ? new Float32Array(m.data) : m.type === 'int64' ? new BigInt64Array(m.data) : new Int32Array(m.data);
  return { type: m.type, dims: m.dims, data };
}

/** Starts ort-worker.js and sends it `init`; resolves once the worker's sessions exist (else it is terminated). */
export async function startOrtWorker(init: ToWorker, transfer: ArrayBuffer[]): Promise<{ worker: Worker; ready: Extract<FromWorker, { kind: 'ready' }> }> {
  const worker = new Worker(new URL('./ort-worker.js', import.meta.url));
  const ready = await new Promise<Extract<FromWorker, { kind: 'ready' }>>((resolve, reject) => {
    const onMessage = (m: FromWorker) => {
      cleanup();
      if (m.kind === 'ready') resolve(m);
      else reject(new Error(`onnxruntime could not create the session: ${m.kind === 'error' ? m.message : m.kind}`));
    };
    const onError = (e: Error) => { cleanup(); reject(e); };
    const onExit = (code: number) => { cleanup(); reject(new Error(`ORT worker exited (code ${code}) while creating the session`)); };
    const cleanup = () => { worker.off('message', onMessage); worker.off('error', onError); worker.off('exit', onExit); };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
    worker.postMessage(init, transfer);
  }).catch(async (err: Error) => {
    await worker.terminate();
    throw err;
  });
  return { worker, ready };
}

/** Stops a worker: `close` lets it release its sessions; terminate() covers one stuck in a run. */
export async function stopOrtWorker(worker: Worker): Promise<void> {
  const exited = new Promise((r) => worker.once('exit', r));
  worker.postMessage({ kind: 'close' } satisfies ToWorker);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  await worker.terminate();
}

export class OrtRunner {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(r: OrtRunResult): void; reject(e: Error): void }>();
  private dead: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: string[],
    readonly outputNames: string[],
    /** Session creation time (graph optimisation and weight prepacking included). */
    readonly createMs: number,
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.failAll(new Error(`ORT worker failed: ${e.message}`)));
    worker.on('exit', (code) => this.failAll(new Error(`ORT worker exited (code ${code})`)));
  }

  /** Starts a worker and creates the session from `model` (the bytes are copied, the caller keeps them). */
  static async create(model: Uint8Array, settings: OrtSessionSettings): Promise<OrtRunner> {
    const copy = model.buffer.slice(model.byteOffset, model.byteOffset + model.byteLength) as ArrayBuffer;
    const { worker, ready } = await startOrtWorker({ kind: 'init', model: copy, settings }, [copy]);
    return new OrtRunner(worker, ready.inputNames, ready.outputNames, ready.createMs);
  }

  run(feeds: Record<string, OrtInput>): Promise<OrtRunResult> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    const msgFeeds: Record<string, OrtTensorMsg> = {};
    for (const [name, t] of Object.entries(feeds)) msgFeeds[name] = toMsg(t);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ kind: 'run', id, feeds: msgFeeds } satisfies ToWorker, Object.values(msgFeeds).map((t) => t.data));
    });
  }

  /** Releases the session and stops the worker. */
  async close(): Promise<void> {
    if (this.dead) return;
    this.dead = new Error('ORT runner closed');
    await stopOrtWorker(this.worker);
  }

  private onMessage(m: FromWorker): void {
    if (m.kind === 'result') {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      const outputs: Record<string, OrtOutput> = {};
      for (const [name, t] of Object.entries(m.outputs)) outputs[name] = fromMsg(t);
      p?.resolve({ outputs, runMs: m.runMs });
    } else if (m.kind === 'error' && m.id !== undefined) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.reject(new Error(`onnxruntime run failed: ${m.message}`));
    }
  }

  private failAll(err: Error): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
