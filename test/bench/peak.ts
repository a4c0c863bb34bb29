// This machine's FMA peak in GFLOP/s at the benchmark's thread count, the ceiling GFLOP/s figures are read against.
// Prefers the kernels' own kernels_bench_matmul (its SIMD level, its thread pool); without it, compiles
// fma-peak.c with the system C compiler (-march=native): a JS-independent measurement either way.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PeakResult {
  gflops: number | null;
  /** How it was measured, or why it could not be. */
  source: string;
}

function lastJsonLine(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1] ?? '') as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The first numeric field whose name contains "peak" (kernels_bench_matmul writes peak_gflops). */
function peakField(json: Record<string, unknown> | undefined): number | undefined {
  if (!json) return undefined;
  const key = Object.keys(json).find((k) => /peak/i.test(k) && typeof json[k] === 'number');
  return key ? (json[key] as number) : undefined;
}

export async function measurePeak(root: string, threads: number): Promise<PeakResult> {
  const native = join(root, 'build/native/kernels/kernels_bench_matmul');
  if (existsSync(native)) {
    // Smallest matmul sizes and one rep: only the FMA peak it measures first is wanted here.
    const r = spawnSync(native, ['--threads', String(threads), '--n', '32', '--c', '256', '--oc', '256', '--reps', '1'], { encoding: 'utf8', timeout: 300_000 });
    const peak = r.status === 0 ? peakField(lastJsonLine(r.stdout)) : undefined;
    if (peak !== undefined) return { gflops: peak, source: `${native} --threads ${threads} (the kernels' own FMA loop)` };
  }
  const dir = await mkdtemp(join(tmpdir(), 'cfd-peak-'));
  try {
    const exe = join(dir, 'fma-peak');
    const src = join(root, 'test/bench/fma-peak.c');
    let cc = spawnSync('cc', ['-O3', '-march=native', '-ffp-contract=fast', '-pthread', src, '-o', exe], { encoding: 'utf8' });
    if (cc.status !== 0) cc = spawnSync('cc', ['-O3', '-ffp-contract=fast', '-pthread', src, '-o', exe], { encoding: 'utf8' });
    if (cc.status !== 0) return { gflops: null, source: `no kernels_bench_matmul and cc failed on fma-peak.c: ${cc.stderr || cc.error?.message}` };
    const r = spawnSync(exe, [String(threads)], { encoding: 'utf8', timeout: 300_000 });
    const json = lastJsonLine(r.stdout);
    const peak = peakField(json);
    if (r.status !== 0 || peak === undefined) return { gflops: null, source: `fma-peak failed: ${r.stderr || r.stdout}` };
    return { gflops: peak, source: `test/bench/fma-peak.c compiled with cc -O3 -march=native (${json!.vector_bytes}-byte vectors; kernels_bench_matmul not built)` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
