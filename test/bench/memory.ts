// Peak resident memory of the agent per base-weight format: a fresh agent per format loads the one-layer stage
// packed in that format and runs one FORWARD (so compute scratch counts), then STATS peak_rss_bytes.
// A format the packer or the agent refuses is reported as null with the reason, never estimated.
import type { WeightFormat } from '../../electron/core/model/stage-pack.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { hiddenInput, reasonOf, startBenchAgent, stopBenchAgent } from './agent-bench.js';
import { packLayerStage } from './layer-forward.js';

export const BENCH_FORMATS = ['f32', 'f16', 'int8', 'q4_0', 'fp4'] as const;
export type BenchFormat = (typeof BENCH_FORMATS)[number];

export interface MemoryResult {
  format: BenchFormat;
  peakRssBytes: number | null;
  reason?: string;
  /** RSS of the agent before LOAD_STAGE (the process itself). */
  idleRssBytes?: number;
  stageFileBytes?: number;
  /** LOAD_STAGE's weight_bytes. */
  weightBytes?: number;
  /** Matrices the packer stored in another format (e.g. a column count not a multiple of 32). */
  fallbacks?: string[];
}

export async function benchMemory(modelDir: string, c: ModelConfig, workDir: string, seqLen: number, threads: number, log: (s: string) => void): Promise<MemoryResult[]> {
  const out: MemoryResult[] = [];
  for (const format of BENCH_FORMATS) {
    log(`  peak RSS, ${format}`);
    let stage: Awaited<ReturnType<typeof packLayerStage>>;
    try {
      stage = await packLayerStage(modelDir, workDir, format as WeightFormat);
    } catch (err) {
      out.push({ format, peakRssBytes: null, reason: `stage-pack cannot write ${format}: ${(err as Error).message}` });
      continue;
    }
    const stored = stage.result.tensors?.filter((t) => t.dims.length === 2).map((t) => t.format) ?? [];
    if (!stored.includes(format as WeightFormat)) {
      out.push({ format, peakRssBytes: null, reason: `stage-pack did not store any matrix as ${format} (stored: ${[...new Set(stored)].join(', ') || 'unknown'})`, stageFileBytes: stage.result.bytes });
      continue;
    }
    const fallbacks = stage.result.fallbacks?.map((f) => `${f.name}: ${f.reason}`) ?? [];
    const a = await startBenchAgent(threads);
    try {
      const idle = await a.client.stats();
      const loaded = await a.client.loadStage({ path: stage.path, loraRank: 0, loraAlpha: 0, targetMask: 0, flags: 0 });
      await a.client.forward({ microId: 1, flags: 0, input: hiddenInput(1, seqLen, c.hiddenSize, 5000) });
      const s = await a.client.stats();
      out.push({ format, peakRssBytes: s.peakRssBytes, idleRssBytes: idle.rssBytes, stageFileBytes: stage.result.bytes, weightBytes: loaded.weightBytes, ...(fallbacks.length ? { fallbacks } : {}) });
    } catch (err) {
      out.push({ format, peakRssBytes: null, reason: reasonOf(err), stageFileBytes: stage.result.bytes });
    } finally {
      await stopBenchAgent(a);
    }
  }
  return out;
}
