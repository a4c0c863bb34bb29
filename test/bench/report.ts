// Formats the benchmark results as readable tables (stdout). Not the JSON summary (run.ts builds that).
import type { LayerForwardResult } from './layer-forward.js';
import type { PrefillSection } from './prefill.js';
import type { BackwardResult } from './backward.js';
import type { PrgeResult } from './prge.js';
import type { MemoryResult } from './memory.js';

function table(header: string[], rows: (string | number | null)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((v) => (v === null ? '—' : typeof v === 'number' ? fmt(v) : v)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

export function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && Math.abs(v) < 0.01) return v.toExponential(1);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** Long reasons stay whole in the JSON; the table shows their start. */
const clip = (s: string, n = 110) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

const mib = (b: number | null | undefined) => (b === null || b === undefined ? null : `${(b / 2 ** 20).toFixed(1)} MiB`);

export function layerTable(rows: { shape: string; r: LayerForwardResult }[], peak: number | null): string {
  return table(
    ['layer forward', 'T', 'ours ms', 'ORT ms', 'ours/ORT', 'ours RT/ORT RT', 'ours GFLOP/s', 'ORT GFLOP/s', 'ours % peak', 'PROFILE ms', 'max |Δ|'],
    rows.map(({ shape, r }) => [
      shape, String(r.seqLen), r.ours.busyMs.medianMs, r.ort.runMs.medianMs, r.oursOverOrt, r.oursOverOrtRoundTrip,
      r.ours.gflops, r.ort.gflops, peak ? `${((100 * r.ours.gflops) / peak).toFixed(1)}%` : null, r.ours.profileForwardMs, r.maxAbsDiff,
    ]),
  );
}

export function prefillTable(p: PrefillSection): string {
  if (!p.results) return `prefill: not measured: ${p.reason}`;
  return table(
    ['prefill (small model)', 'ours full tok/s', 'llama.cpp all-logits tok/s', 'ours/llama.cpp', 'ours no-head tok/s', 'llama.cpp last tok/s', 'ours/llama.cpp', 'llama.cpp defaults last tok/s'],
    p.results.map((r) => [
      `T=${r.seqLen}`, r.ours.fullStage.tokPerSec, r.llamaCpp.f32.allLogitsTokPerSec, r.oursOverLlamaCpp,
      r.ours.noHeadStage.tokPerSec, r.llamaCpp.f32.lastLogitTokPerSec, r.oursNoHeadOverLlamaCppLast, r.llamaCpp.default?.lastLogitTokPerSec ?? null,
    ]),
  );
}

export function backwardTable(b: { results: BackwardResult[] | null; reason?: string }, shape: string): string {
  if (!b.results) return `backward: not measured: ${b.reason}`;
  return table(
    ['backward (LoRA r=8, 7 modules)', 'T', 'forward keep ms', 'backward ms', 'bwd/fwd'],
    b.results.map((r) => [shape, String(r.seqLen), r.forwardKeep.busyMs.medianMs, r.backward.busyMs.medianMs, r.bwdOverFwd]),
  );
}

export function prgeTable(p: { results: PrgeResult[]; reason?: string }, shape: string): string {
  const lines: string[] = [];
  if (p.results.length) {
    lines.push(table(['P-RGE batched forward', 'T', 'batched ms', '8 single ms', 'speedup'], p.results.map((r) => [shape, String(r.seqLen), r.batched.busyMs.medianMs, r.separate.busyMs.medianMs, r.speedup])));
    lines.push(`  batched side: ${clip(p.results[0]!.batchedMode, 200)}`);
  }
  if (p.reason) lines.push(`P-RGE: not measured: ${p.reason}`);
  return lines.join('\n');
}

export function memoryTable(m: MemoryResult[], shape: string): string {
  return table(
    [`peak RSS (${shape} layer, fresh agent)`, 'peak RSS', 'stage file', 'weight bytes', 'note'],
    m.map((r) => [r.format, mib(r.peakRssBytes), mib(r.stageFileBytes), mib(r.weightBytes), clip(r.reason ?? (r.fallbacks ? `fallbacks: ${r.fallbacks.length}` : ''))]),
  );
}
