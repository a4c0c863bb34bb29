// P-RGE's batched zeroth-order forward: ZO_FORWARD with q=4 queries, i.e. a batch of 8 copies of one sequence
// (copy 2i at B + eps*z_i, 2i+1 at B - eps*z_i; LoRA-FA r=8 on all 7 modules), against 8 separate single-copy
// FORWARDs of the same stage. When the agent has no ZO_FORWARD, the batched side is an 8-row FORWARD instead (the
// base-weight sharing without the per-copy adapters), labelled as such.
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import type { Tensor } from '../../electron/core/protocol/messages.js';
import { hiddenInput, isUnknownCommand, reasonOf, startBenchAgent, stopBenchAgent, timedRequest } from './agent-bench.js';
import { BENCH_LORA_ALPHA, BENCH_LORA_RANK } from './backward.js';
import { measure, type Timing } from './measure.js';

export const PRGE_QUERIES = 4;
/**
 * Sequence lengths measured: 128 (the headline) and 32. On a CPU a single T=128 forward already reuses each weight
 * 128 times and is compute-bound, so batching copies can only save per-pass costs (weight panel packing, request
 * handling); at short sequences those dominate and batching pays. Phones' GPUs are in the second regime longer.
 */
export const PRGE_SEQ_LENS = [32, 128] as const;

export interface PrgeResult {
  seqLen: number;
  /** 'ZO_FORWARD q=4' or 'FORWARD of 8 rows (ZO_FORWARD unavailable: ...)'. */
  batchedMode: string;
  batched: { busyMs: Timing; wallMs: Timing };
  /** The 8 single-copy FORWARDs together. */
  separate: { busyMs: Timing; wallMs: Timing };
  /** separate / batched (busy): how much faster one batched pass is than 8 passes. */
  speedup: number;
}

/** copies x [1, T, C] stacked: the same sequence in every row (P-RGE perturbs the adapters, not the data). */
function repeatRows(x: Tensor, copies: number): Tensor {
  const src = x.data as Float32Array;
  const out = new Float32Array(src.length * copies);
  for (let i = 0; i < copies; i++) out.set(src, i * src.length);
  return { dtype: 'f32', dims: [copies, ...x.dims.slice(1)], data: out };
}

export async function benchPrge(c: ModelConfig, stagePath: string, seqLen: number, threads: number, quick: boolean, log: (s: string) => void): Promise<{ result: PrgeResult | null; reason?: string }> {
  const copies = 2 * PRGE_QUERIES;
  const a = await startBenchAgent(threads);
  try {
    // flags 0: A frozen (LoRA-FA), as P-RGE trains only B.
    await a.client.loadStage({ path: stagePath, loraRank: BENCH_LORA_RANK, loraAlpha: BENCH_LORA_ALPHA, targetMask: targetMask(LORA_MODULES), flags: 0 });
    await a.client.setLora(initialLora(c, 0, 1, BENCH_LORA_RANK, LORA_MODULES, 11));
    const one = hiddenInput(1, seqLen, c.hiddenSize, 4000 + seqLen);
    const batch = repeatRows(one, copies);

    let batchedMode = `ZO_FORWARD q=${PRGE_QUERIES}`;
    let step = 1;
    let batchedOp = () => a.client.zoForward({ seed: 12345, step: step++, queries: PRGE_QUERIES, firstQuery: 0, eps: 1e-2, flags: 0, input: batch }) as Promise<unknown>;
    try {
      if (typeof a.client.zoForward !== 'function') throw new Error('AgentClient has no zoForward() in this checkout');
      await batchedOp();
    } catch (err) {
      if (!(isUnknownCommand(err) || (err as Error).message.includes('no zoForward'))) throw err;
      batchedMode = `FORWARD of ${copies} rows (ZO_FORWARD unavailable: ${reasonOf(err)})`;
      batchedOp = () => a.client.forward({ microId: 1, flags: 0, input: batch });
    }
    log(`  ours  ${batchedMode}, hidden ${c.hiddenSize} T=${seqLen}`);
    const b = await measure(async () => {
      const r = await timedRequest(a.client, batchedOp);
      return { busyMs: r.busyMs, wallMs: r.wallMs };
    }, { quick });
    log(`  ours  ${copies} single-copy FORWARDs, hidden ${c.hiddenSize} T=${seqLen}`);
    const s = await measure(async () => {
      let busyMs = 0;
      let wallMs = 0;
      for (let i = 0; i < copies; i++) {
        const r = await timedRequest(a.client, () => a.client.forward({ microId: 1, flags: 0, input: one }));
        busyMs += r.busyMs;
        wallMs += r.wallMs;
      }
      return { busyMs, wallMs };
    }, { quick });
    return {
      result: {
        seqLen,
        batchedMode,
        batched: { busyMs: b.busyMs!, wallMs: b.wallMs! },
        separate: { busyMs: s.busyMs!, wallMs: s.wallMs! },
        speedup: s.busyMs!.medianMs / b.busyMs!.medianMs,
      },
    };
  } catch (err) {
    return { result: null, reason: reasonOf(err) };
  } finally {
    await stopBenchAgent(a);
  }
}
