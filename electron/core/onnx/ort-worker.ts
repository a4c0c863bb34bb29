// Worker-thread side of OrtRunner: owns one onnxruntime-node InferenceSession and runs it on request.
// session.run blocks the thread it is called on, so it must never run on the main (UI/IPC) thread.
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { FromWorker, OrtTensorMsg, ToWorker } from './ort-messages.js';

const port = parentPort;
if (!port) throw new Error('ort-worker.js must be started as a worker thread (by OrtRunner)');

let session: ort.InferenceSession | undefined;

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
      session = await ort.InferenceSession.create(new Uint8Array(m.model), {
        intraOpNumThreads: m.settings.intraOpNumThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: m.settings.graphOptimizationLevel ?? 'all',
        logSeverityLevel: 3,
      });
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
    } else {
      await session?.release();
      session = undefined;
      port!.close();
    }
  } catch (err) {
    post({ kind: 'error', id: m.kind === 'run' ? m.id : undefined, message: (err as Error).message });
  }
}
