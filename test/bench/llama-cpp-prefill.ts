// Prefill through llama.cpp (node-llama-cpp's prebuilt CPU build): T prompt tokens in one batch into an empty KV
// cache, timed around llama_decode. Uses the binding's batch calls (initBatch/addToBatch/decodeBatch, what
// LlamaContext's own dispatcher calls) so that the logits of every position can be requested without a sampler
// run per position, and so nothing but the decode is timed.
import type { Llama, LlamaContext, LlamaModel } from 'node-llama-cpp';
import { measure, type Timing } from './measure.js';

/** The slice of node-llama-cpp's internal context binding used here (dist/bindings/AddonTypes.d.ts AddonContext). */
interface AddonContext {
  initBatch(size: number): void;
  addToBatch(sequenceId: number, firstTokenSequenceIndex: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array;
  decodeBatch(): Promise<void>;
  removeTokenCellsFromSequence(sequenceId: number, startPos: number, endPos: number): boolean;
  setThreads(threads: number): void;
  getThreads(): number;
}

export interface LlamaCppSettings {
  /** 'f32': F32 KV cache and no flash attention (llama.cpp's CPU flash attention computes in F16), the same
   * precision as our engine; 'default': llama.cpp's defaults (F16 KV cache, flash attention auto). */
  attention: 'f32' | 'default';
}

export interface LlamaCppPrefill {
  seqLen: number;
  /** Logits of every position (the work a training forward does). */
  allLogits: Timing;
  /** Logits of the last position only (plain prefill before generation). */
  lastLogit: Timing;
  threadsUsed: number;
}

/** The prompt both engines prefill: ids from 259 on (the made-up vocabulary's normal tokens; any ids time alike). */
export function promptIds(T: number): Uint32Array {
  return Uint32Array.from({ length: T }, (_, i) => 259 + ((i * 7919) % 1000));
}

export async function openLlamaCppModel(llama: Llama, ggufPath: string): Promise<LlamaModel> {
  return llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 });
}

export async function benchLlamaCppPrefill(model: LlamaModel, seqLens: number[], threads: number, settings: LlamaCppSettings, quick: boolean): Promise<LlamaCppPrefill[]> {
  const maxT = Math.max(...seqLens);
  const context: LlamaContext = await model.createContext({
    contextSize: Math.max(maxT, 256),
    batchSize: maxT,
    sequences: 1,
    threads,
    ...(settings.attention === 'f32' ? { flashAttention: false, experimentalKvCacheKeyType: 'F32' as const, experimentalKvCacheValueType: 'F32' as const } : {}),
  });
  try {
    const addon = (context as unknown as { _ctx?: AddonContext })._ctx;
    if (!addon || typeof addon.decodeBatch !== 'function') throw new Error('node-llama-cpp internals changed: LlamaContext._ctx has no decodeBatch');
    const seq = context.getSequence();
    const seqId = (seq as unknown as { _sequenceId?: number })._sequenceId ?? 0;
    const out: LlamaCppPrefill[] = [];
    for (const T of seqLens) {
      const tokens = promptIds(T);
      const run = (logitIndexes: Uint32Array) => async () => {
        addon.removeTokenCellsFromSequence(seqId, 0, -1); // empty cache: every run is a fresh prefill
        addon.initBatch(T);
        addon.addToBatch(seqId, 0, tokens, logitIndexes);
        addon.setThreads(threads);
        const t0 = performance.now();
        await addon.decodeBatch();
        return { ms: performance.now() - t0 };
      };
      const all = await measure(run(Uint32Array.from({ length: T }, (_, i) => i)), { quick });
      const last = await measure(run(Uint32Array.from([T - 1])), { quick });
      out.push({ seqLen: T, allLogits: all.ms!, lastLogit: last.ms!, threadsUsed: addon.getThreads() });
    }
    addon.removeTokenCellsFromSequence(seqId, 0, -1);
    return out;
  } finally {
    await context.dispose();
  }
}
