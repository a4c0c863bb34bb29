// Prefill of the whole small model, B=1: the agent with one stage holding everything (FORWARD of T token ids)
// against llama.cpp on the same weights written as an F32 GGUF, same thread count, same F32 arithmetic.
//
// Our engine is a training engine: a stage with the head computes the logits of every position. So the matched
// comparison is ours (full stage) vs llama.cpp asked for every position's logits; the plain-prefill comparison
// (llama.cpp computing the last position only) is against a stage without the head, whose missing last-row head
// is 2 * C * V FLOPs, under 0.5% of the work at these shapes.
import { join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage } from '../../electron/core/model/stage-pack.js';
import { writeLlamaGguf } from '../../electron/core/model/gguf-llama.js';
import { minimalSpmVocab } from '../../electron/core/model/gguf-vocab.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { loadLlamaCpp } from '../support/llama-cpp.js';
import { reasonOf, startBenchAgent, stopBenchAgent, timedRequest } from './agent-bench.js';
import { benchLlamaCppPrefill, openLlamaCppModel, promptIds, type LlamaCppPrefill } from './llama-cpp-prefill.js';
import { measure, type Timing } from './measure.js';
import { modelForwardFlops } from './flops.js';

export interface PrefillResult {
  seqLen: number;
  ours: { fullStage: { busyMs: Timing; wallMs: Timing; tokPerSec: number }; noHeadStage: { busyMs: Timing; wallMs: Timing; tokPerSec: number } };
  llamaCpp: { f32: LlamaCppPrefill & { allLogitsTokPerSec: number; lastLogitTokPerSec: number }; default: (LlamaCppPrefill & { allLogitsTokPerSec: number; lastLogitTokPerSec: number }) | null };
  /** ours tokens/s over llama.cpp tokens/s (above 1 = ours faster): full stage vs all logits, F32 attention. */
  oursOverLlamaCpp: number;
  /** ours stage without head vs llama.cpp last-position logits, F32 attention. */
  oursNoHeadOverLlamaCppLast: number;
  flops: { allLogits: number; lastLogit: number };
}

export interface PrefillSection {
  results: PrefillResult[] | null;
  reason?: string;
  ggufBytes?: number;
  llamaCppThreads?: number;
}

const tokPerSec = (T: number, ms: number) => (T * 1000) / ms;

export async function benchPrefill(modelDir: string, c: ModelConfig, workDir: string, seqLens: number[], threads: number, quick: boolean, log: (s: string) => void): Promise<PrefillSection> {
  const lib = await loadLlamaCpp();
  if (typeof lib === 'string') return { results: null, reason: lib };
  const folder = await openModelFolder(modelDir);
  const gguf = join(workDir, 'small-f32.gguf');
  log('  writing the small model as F32 GGUF');
  const { bytes: ggufBytes } = await writeLlamaGguf(folder, gguf, { dtype: 'f32', vocab: minimalSpmVocab(c.vocabSize), name: 'confidant-bench-small' });
  const full = join(workDir, 'small-full.stage');
  const noHead = join(workDir, 'small-nohead.stage');
  await packStage(folder, { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: true }, full);
  await packStage(folder, { layerStart: 0, layerEnd: c.numLayers, hasEmbedding: true, hasHead: false }, noHead);

  const ours = new Map<number, PrefillResult['ours']>();
  const a = await startBenchAgent(threads);
  try {
    for (const [stage, key] of [[full, 'fullStage'], [noHead, 'noHeadStage']] as const) {
      await a.client.loadStage({ path: stage, loraRank: 0, loraAlpha: 0, targetMask: 0, flags: 0 });
      for (const T of seqLens) {
        log(`  ours  ${key} T=${T}`);
        const input = { dtype: 'i32' as const, dims: [1, T], data: Int32Array.from(promptIds(T)) };
        const t = await measure(async () => {
          const r = await timedRequest(a.client, () => a.client.forward({ microId: 1, flags: 0, input }));
          return { wallMs: r.wallMs, busyMs: r.busyMs };
        }, { quick });
        const entry = ours.get(T) ?? ({} as PrefillResult['ours']);
        entry[key] = { busyMs: t.busyMs!, wallMs: t.wallMs!, tokPerSec: tokPerSec(T, t.busyMs!.medianMs) };
        ours.set(T, entry);
      }
    }
  } catch (err) {
    return { results: null, reason: `agent prefill failed: ${reasonOf(err)}`, ggufBytes };
  } finally {
    await stopBenchAgent(a);
  }

  const model = await openLlamaCppModel(lib.llama, gguf);
  try {
    log('  llama.cpp prefill, F32 attention');
    const f32 = await benchLlamaCppPrefill(model, seqLens, threads, { attention: 'f32' }, quick);
    log('  llama.cpp prefill, default settings');
    let dflt: LlamaCppPrefill[] | null = null;
    try {
      dflt = await benchLlamaCppPrefill(model, seqLens, threads, { attention: 'default' }, quick);
    } catch (err) {
      log(`  (llama.cpp defaults failed: ${(err as Error).message})`);
    }
    const withRates = (p: LlamaCppPrefill) => ({ ...p, allLogitsTokPerSec: tokPerSec(p.seqLen, p.allLogits.medianMs), lastLogitTokPerSec: tokPerSec(p.seqLen, p.lastLogit.medianMs) });
    const results = seqLens.map((T, i): PrefillResult => {
      const o = ours.get(T)!;
      const l = withRates(f32[i]!);
      return {
        seqLen: T,
        ours: o,
        llamaCpp: { f32: l, default: dflt ? withRates(dflt[i]!) : null },
        oursOverLlamaCpp: o.fullStage.tokPerSec / l.allLogitsTokPerSec,
        oursNoHeadOverLlamaCppLast: o.noHeadStage.tokPerSec / l.lastLogitTokPerSec,
        flops: { allLogits: modelForwardFlops(c, 1, T, T), lastLogit: modelForwardFlops(c, 1, T, 1) },
      };
    });
    return { results, ggufBytes, llamaCppThreads: f32[0]?.threadsUsed };
  } finally {
    await model.dispose();
  }
}
