// Turns one run's section results into the printed tables and the one-line JSON summary (headline numbers with
// their definitions, a reason for every null, and every per-shape detail). No measuring here.
import { availableParallelism, cpus } from 'node:os';
import type { BackwardResult } from './backward.js';
import { SMALL_MODEL, TINYLLAMA_LAYER, type BenchShape } from './bench-shapes.js';
import type { LayerForwardResult, LayerForwardSection } from './layer-forward.js';
import { BENCH_FORMATS, type MemoryResult } from './memory.js';
import type { PeakResult } from './peak.js';
import type { PrefillSection } from './prefill.js';
import type { PrgeResult } from './prge.js';
import { backwardTable, layerTable, memoryTable, prefillTable, prgeTable } from './report.js';

/** A section's result, or why the whole section failed. */
export type Section<T> = T | { failed: string };

export function failed<T>(v: Section<T>): v is { failed: string } {
  return typeof v === 'object' && v !== null && 'failed' in v;
}

export interface BenchResults {
  threads: number;
  quick: boolean;
  binary: string;
  agentArgs: string[];
  threadsFlag: boolean;
  /** The sequence length of the headline numbers (512, or 128 with --quick). */
  headlineT: number;
  peak: PeakResult;
  layer: { shape: BenchShape; r: Section<LayerForwardSection & { agent: { helloThreads: number; backends: string[] } }> }[];
  prefill: Section<PrefillSection>;
  backward: Section<{ results: BackwardResult[] | null; reason?: string }>;
  prge: Section<{ results: PrgeResult[]; reason?: string }>;
  memory: Section<MemoryResult[]>;
}

const firstLine = (s: { failed: string }) => s.failed.split('\n')[0]!;

export function renderTables(r: BenchResults): string {
  const agentInfo = r.layer.map((l) => l.r).find((x) => !failed(x));
  const agent = agentInfo && !failed(agentInfo) ? agentInfo.agent : undefined;
  const lines: string[] = [];
  lines.push(`Confidant bench: ${r.threads} threads on ${cpus()[0]?.model ?? 'unknown CPU'} (${availableParallelism()} logical CPUs)${r.quick ? ' [QUICK: not meaningful]' : ''}`);
  lines.push(`agent ${r.binary} ${r.agentArgs.join(' ')}${r.threadsFlag ? '' : ' (no --threads in this build: its default used)'}; HELLO cpu_threads ${agent?.helloThreads ?? '?'}; backends ${agent?.backends.join(', ') ?? '?'}`);
  lines.push(`FMA peak: ${r.peak.gflops === null ? 'unknown' : `${r.peak.gflops.toFixed(1)} GFLOP/s`} (${r.peak.source})`);
  lines.push('ours = agent compute time (STATS busy_us per request); RT = round trip; ORT = onnxruntime session.run; ratios of times: above 1 = ours slower');
  lines.push('');
  const layerRows = r.layer.flatMap((l) => (failed(l.r) ? [] : l.r.results.map((x) => ({ shape: l.shape.key, r: x }))));
  lines.push(layerTable(layerRows, r.peak.gflops));
  for (const l of r.layer) if (failed(l.r)) lines.push(`${l.shape.key}: ${firstLine(l.r)}`);
  for (const { shape, r: x } of layerRows) if (x.ours.profileReason) lines.push(`PROFILE ${shape} T=${x.seqLen}: ${x.ours.profileReason}`);
  lines.push('');
  lines.push('prefill: tokens/s (ours busy time; llama.cpp llama_decode time, F32 KV cache, no flash attention); ratios of tokens/s: above 1 = ours faster');
  lines.push(failed(r.prefill) ? firstLine(r.prefill) : prefillTable(r.prefill));
  lines.push('');
  lines.push(failed(r.backward) ? firstLine(r.backward) : backwardTable(r.backward, TINYLLAMA_LAYER.key));
  lines.push('');
  lines.push(failed(r.prge) ? firstLine(r.prge) : prgeTable(r.prge, TINYLLAMA_LAYER.key));
  lines.push('');
  lines.push(failed(r.memory) ? firstLine(r.memory) : memoryTable(r.memory, TINYLLAMA_LAYER.key));
  return lines.join('\n');
}

export function buildSummary(r: BenchResults): Record<string, unknown> {
  const T = r.headlineT;
  const reasons: Record<string, string> = {};
  const bigLayer = r.layer[0]!.r;
  const smallLayer = r.layer[1]!.r;
  let headLayer: LayerForwardResult | undefined = failed(bigLayer) ? undefined : bigLayer.results.find((x) => x.seqLen === T);
  if (!headLayer) reasons.layerFwdOursOverOrt = failed(bigLayer) ? firstLine(bigLayer) : 'no result';
  else if (headLayer.ours.busyMs.medianMs <= 0) {
    reasons.layerFwdOursOverOrt = 'the agent reported no busy time (STATS busy_us did not move)';
    headLayer = undefined;
  }
  if (reasons.layerFwdOursOverOrt) reasons.gflopsLayerFwd = reasons.layerFwdOursOverOrt;
  const pre = failed(r.prefill) ? undefined : r.prefill;
  const headPrefill = pre?.results?.find((x) => x.seqLen === T);
  if (!headPrefill) reasons.prefillOursOverLlamaCpp = failed(r.prefill) ? firstLine(r.prefill) : (pre?.reason ?? 'no result');
  const headBwd = failed(r.backward) ? undefined : r.backward.results?.find((x) => x.seqLen === T);
  if (!headBwd) reasons.bwdOverFwd = failed(r.backward) ? firstLine(r.backward) : (r.backward.reason ?? 'no result');
  const prgeAt = (seqLen: number) => (failed(r.prge) ? undefined : r.prge.results.find((x) => x.seqLen === seqLen));
  const prge = prgeAt(128);
  const prgeShort = prgeAt(32);
  const prgeWhyNot = failed(r.prge) ? firstLine(r.prge) : (r.prge.reason ?? 'no result');
  if (!prge) reasons.prgeBatchedSpeedup = prgeWhyNot;
  if (!prgeShort) reasons.prgeBatchedSpeedupT32 = prgeWhyNot;
  if (r.peak.gflops === null) reasons.peakGflops = r.peak.source;
  const mem: MemoryResult[] = failed(r.memory) ? BENCH_FORMATS.map((format) => ({ format, peakRssBytes: null, reason: firstLine(r.memory as { failed: string }) })) : r.memory;
  for (const m of mem) if (m.peakRssBytes === null) reasons[`peakRssBytes.${m.format}`] = m.reason ?? 'unknown';

  return {
    quick: r.quick,
    threads: r.threads,
    agentThreadsFlag: r.threadsFlag,
    agentArgs: r.agentArgs,
    headlineSeqLen: T,
    definitions: {
      layerFwdOursOverOrt: `agent busy time / onnxruntime session.run time, one ${TINYLLAMA_LAYER.description} forward, B=1, T=${T} (above 1: ours slower)`,
      gflopsLayerFwd: 'matmul + causal attention FLOPs (flops.ts) / agent busy time, same layer and T',
      prefillOursOverLlamaCpp: `ours tokens/s / llama.cpp tokens/s, ${SMALL_MODEL.description}, T=${T}, both computing every position's logits, F32 weights and attention (above 1: ours faster)`,
      bwdOverFwd: `BACKWARD busy / FORWARD(keep) busy, same layer, T=${T}, LoRA r=8 on q,k,v,o,gate,up,down`,
      prgeBatchedSpeedup: '8 single-copy FORWARD busy times summed / one batched (2q=8 copies) busy time, same layer, T=128 (above 1: batching helps)',
      prgeBatchedSpeedupT32: 'the same at T=32, where a single forward is dominated by per-pass costs rather than FLOPs',
      peakRssBytes: 'STATS peak_rss_bytes of a fresh agent after LOAD_STAGE of the one-layer stage in that format and one FORWARD at T=128',
    },
    layerFwdOursOverOrt: headLayer?.oursOverOrt ?? null,
    gflopsLayerFwd: headLayer?.ours.gflops ?? null,
    peakGflops: r.peak.gflops,
    peakSource: r.peak.source,
    prefillOursOverLlamaCpp: headPrefill?.oursOverLlamaCpp ?? null,
    bwdOverFwd: headBwd?.bwdOverFwd ?? null,
    prgeBatchedSpeedup: prge?.speedup ?? null,
    prgeBatchedSpeedupT32: prgeShort?.speedup ?? null,
    prgeMode: prge?.batchedMode ?? null,
    peakRssBytes: Object.fromEntries(mem.map((m) => [m.format, m.peakRssBytes])),
    reasons,
    shapes: {
      [TINYLLAMA_LAYER.key]: {
        description: TINYLLAMA_LAYER.description,
        layerForward: failed(bigLayer) ? bigLayer : bigLayer.results,
        backward: failed(r.backward) ? r.backward : r.backward.results,
        prge: failed(r.prge) ? r.prge : r.prge.results,
        memory: mem,
      },
      [SMALL_MODEL.key]: {
        description: SMALL_MODEL.description,
        layerForward: failed(smallLayer) ? smallLayer : smallLayer.results,
        prefill: r.prefill,
      },
    },
  };
}
