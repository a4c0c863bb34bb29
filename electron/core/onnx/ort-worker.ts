// Worker-thread side of OrtRunner and OrtLanguageModel: owns the onnxruntime-node sessions and, for a Llama, the
// KV cache, and runs them on request: a plain graph run, a generation (streaming one message per token, cancellable
// between tokens) or a dataset loss. session.run blocks the thread it is called on, so it must never run on the
// main (UI/IPC) thread; the cache stays here, so no cache bytes ever cross threads.
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { FromWorker, LlmInit, OrtSessionSettings, OrtTensorMsg, ToWorker } from './ort-messages.js';
import { KvCache } from './ort-kv-cache.js';
import { KvDecoder } from './ort-decode.js';
import { datasetLoss } from './ort-loss.js';

const port = parentPort;
if (!port) throw new Error('ort-worker.js must be started as a worker thread (by OrtRunner or OrtLanguageModel)');

let session: ort.InferenceSession | undefined;
let llm: { decoder?: KvDecoder; full?: ort.InferenceSession; sessions: ort.InferenceSession[]; vocabSize: number } | undefined;
/** The generation or loss in progress (one at a time: they share the sessions and the cache). */
let job: { id: number; cancelled: boolean } | undefined;

function createSession(model: ArrayBuffer, settings: OrtSessionSettings): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(new Uint8Array(model), {
    intraOpNumThreads: settings.intraOpNumThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: settings.graphOptimizationLevel ?? 'all',
    logSeverityLevel: 3,
  });
}

async function initLlm(init: LlmInit): Promise<FromWorker> {
  const t0 = performance.now();
  const decoderSession = init.decoder ? await createSession(init.decoder, init.settings) : undefined;
  const full = init.full ? await createSession(init.full, init.settings) : undefined;
  const named = decoderSession ?? full;
  if (!named) throw new Error('init-llm needs a decoder graph, a full-sequence graph or both');
  const cache = () => new KvCache({ numLayers: init.numLayers, numKvHeads: init.numKvHeads, headDim: init.headDim, batch: 1, maxLength: init.maxLength });
  llm = {
    decoder: decoderSession && new KvDecoder(decoderSession, cache(), init.vocabSize),
    full,
    sessions: [decoderSession, full].filter((x) => x !== undefined),
    vocabSize: init.vocabSize,
  };
  return { kind: 'ready', inputNames: [...named.inputNames], outputNames: [...named.outputNames], createMs: performance.now() - t0 };
}

/** Runs one generation or loss job; a second one while it runs is refused, not queued. */
async function runJob(id: number, work: (j: { cancelled: boolean }) => Promise<void>): Promise<void> {
  if (!llm) throw new Error('the language model is not loaded in the ORT worker');
  if (job) throw new Error('the model is busy with another generation or evaluation');
  job = { id, cancelled: false };
  try {
    await work(job);
  } finally {
    job = undefined;
  }
}

function toTensor(m: OrtTensorMsg): ort.Tensor {
  switch (m.type) {
    case 'float32': return new ort.Tensor('float32', new Float32Array(m.data), m.dims);
    case 'int64': return new ort.Tensor('int64', new BigInt64Array(m.data), m.dims);
    case 'int32': return new ort.Tensor('int32', new Int32Array(m.data), m.dims);
  }
}

function fromTensor(t: ort.Tensor): { msg: OrtTensorMsg; transfer: ArrayBuffer } {
  const src = t.data as Float32Array | BigInt64Array | Int32Array;
  const type = t.type as OrtTensorMsg['type'];
  if (type !== 'float32' && type !== 'int64' && type !== 'int32') throw new Error(`ORT output of type ${t.type} is not supported by OrtRunner`);
  // Copy into an owned buffer: the output may be a view on memory the binding still holds.
  const data = src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength) as ArrayBuffer;
  return { msg: { type, dims: [...t.dims], data }, transfer: data };
}

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(m, transfer);
}

port.on('message', (m: ToWorker) => {
  void handle(m);
});

async function handle(m: ToWorker): Promise<void> {
  try {
    if (m.kind === 'init') {
      const t0 = performance.now();
      session = await createSession(m.model, m.settings);
      post({ kind: 'ready', inputNames: [...session.inputNames], outputNames: [...session.outputNames], createMs: performance.now() - t0 });
    } else if (m.kind === 'run') {
      if (!session) throw new Error('ORT session not initialised');
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(m.feeds)) feeds[name] = toTensor(t);
      const t0 = performance.now();
      const results = await session.run(feeds);
      const runMs = performance.now() - t0;
      const outputs: Record<string, OrtTensorMsg> = {};
      const transfer: ArrayBuffer[] = [];
      for (const [name, t] of Object.entries(results)) {
        const { msg, transfer: buf } = fromTensor(t as ort.Tensor);
        outputs[name] = msg;
        transfer.push(buf);
      }
      post({ kind: 'result', id: m.id, outputs, runMs }, transfer);
    } else if (m.kind === 'init-llm') {
      post(await initLlm(m.llm));
    } else if (m.kind === 'generate') {
      await runJob(m.id, async (j) => {
        const decoder = llm!.decoder;
        if (!decoder) throw new Error('this model was loaded without the decoder graph: it cannot generate');
        const stats = await decoder.generate(m.promptIds, m.options, (tokenId) => post({ kind: 'token', id: m.id, tokenId }), () => j.cancelled);
        post({ kind: 'generated', id: m.id, stats });
      });
    } else if (m.kind === 'cancel') {
      if (job?.id === m.id) job.cancelled = true;
    } else if (m.kind === 'loss') {
      await runJob(m.id, async () => {
        const full = llm!.full;
        if (!full) throw new Error('this model was loaded without the full-sequence graph: it cannot compute a loss');
        const t0 = performance.now();
        const sums = await datasetLoss(full, m.samples, llm!.vocabSize, m.batchSize);
        post({ kind: 'loss-result', id: m.id, sums, runMs: performance.now() - t0 });
      });
    } else {
      await session?.release();
      for (const s of llm?.sessions ?? []) await s.release();
      session = undefined;
      llm = undefined;
      port!.close();
    }
  } catch (err) {
    post({ kind: 'error', id: 'id' in m ? m.id : undefined, message: (err as Error).message });
  }
}
