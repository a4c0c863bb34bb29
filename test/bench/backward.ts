// Training step cost of one layer: FORWARD keep=true then BACKWARD (grad_output given, as a middle stage gets
// it), with LoRA r=8 on all 7 modules (plain LoRA: A and B trainable). Reports backward time over forward time.
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { LOAD_STAGE_FLAG_TRAIN_A } from '../../electron/core/protocol/messages.js';
import { initialLora } from '../../electron/core/train/lora-init.js';
import { LORA_MODULES, targetMask } from '../../electron/core/train/lora-modules.js';
import { hiddenInput, reasonOf, startBenchAgent, stopBenchAgent, timedRequest } from './agent-bench.js';
import { measure, type Timing } from './measure.js';

export const BENCH_LORA_RANK = 8;
export const BENCH_LORA_ALPHA = 16;

export interface BackwardResult {
  seqLen: number;
  forwardKeep: { busyMs: Timing; wallMs: Timing };
  backward: { busyMs: Timing; wallMs: Timing };
  /** backward busy / forward(keep) busy. */
  bwdOverFwd: number;
}

export async function benchBackward(c: ModelConfig, stagePath: string, seqLens: number[], threads: number, quick: boolean, log: (s: string) => void): Promise<{ results: BackwardResult[] | null; reason?: string }> {
  const a = await startBenchAgent(threads);
  try {
    await a.client.loadStage({ path: stagePath, loraRank: BENCH_LORA_RANK, loraAlpha: BENCH_LORA_ALPHA, targetMask: targetMask(LORA_MODULES), flags: LOAD_STAGE_FLAG_TRAIN_A });
    await a.client.setLora(initialLora(c, 0, 1, BENCH_LORA_RANK, LORA_MODULES, 7));
    const results: BackwardResult[] = [];
    for (const T of seqLens) {
      log(`  ours  forward(keep) + backward, hidden ${c.hiddenSize} T=${T}`);
      const input = hiddenInput(1, T, c.hiddenSize, 2000 + T);
      const gradOutput = hiddenInput(1, T, c.hiddenSize, 3000 + T);
      const t = await measure(async () => {
        const f = await timedRequest(a.client, () => a.client.forward({ microId: 7, flags: 1, input }));
        const b = await timedRequest(a.client, () => a.client.backward({ microId: 7, lossScale: 1, gradOutput }));
        return { fwdBusy: f.busyMs, fwdWall: f.wallMs, bwdBusy: b.busyMs, bwdWall: b.wallMs };
      }, { quick });
      await a.client.zeroGrad();
      results.push({
        seqLen: T,
        forwardKeep: { busyMs: t.fwdBusy!, wallMs: t.fwdWall! },
        backward: { busyMs: t.bwdBusy!, wallMs: t.bwdWall! },
        bwdOverFwd: t.bwdBusy!.medianMs / t.fwdBusy!.medianMs,
      });
    }
    return { results };
  } catch (err) {
    return { results: null, reason: reasonOf(err) };
  } finally {
    await stopBenchAgent(a);
  }
}
