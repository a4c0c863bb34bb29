// One P-RGE (zeroth-order, LoRA-FA) training step over the pipeline: the forward-only pass of the 2q perturbed
// copies (zo-pipeline.ts), the q projected gradients on the host, then ZO_STEP with the same (seed, step) on every
// stage. The drop-in for job.ts's backprop step (runPass + optimizerStep); needs stages loaded with LOAD_STAGE
// flags bit 0 clear (A frozen), which only changes what BACKWARD would train: ZO never touches A.
import type { PipelineSpan, RelayDtype } from '../api/types.js';
import type { MicroBatch, StageHandle } from './pipeline.js';
import { runZoForwardPass } from './zo-pipeline.js';

export interface ZoStepOptions {
  /** Base seed of the run; with `step` it keys every z_i on every stage (below 2^53). */
  seed: number;
  /** 1-based training step (u32); a different step draws fresh directions. */
  step: number;
  /** Learning rate of B ← B − lr · mean_i(g_i z_i). */
  lr: number;
  /** q, directions per step (REFERENCE: q·batch ≈ 16 in the authors' runs). */
  queries: number;
  /** Perturbation size; the authors use 1e-2. */
  eps: number;
  /** Hidden states between stages as f16 or f32 (the default, as runPass). */
  relay?: RelayDtype;
  /** Queries whose copies ride in one ZO_FORWARD (divides queries; default all): zo-pipeline.ts. */
  queriesPerOp?: number;
  nowMs?: () => number;
}

export interface ZoStepResult {
  /** Mean loss of the step: the mean of the 2q copy losses, the unperturbed loss up to O(eps²). */
  loss: number;
  /** L_c = Σ mask·CE / Σ mask of copy c over the step (2q entries). */
  copyLosses: number[];
  /** g_i = (L_2i − L_2i+1) / (2 eps), one per query, as sent to ZO_STEP. */
  projectedGradients: number[];
  /** Σ mask of the step (one copy's real target count): tokens trained on, for tok/s. */
  weightSum: number;
  relayBytes: number;
  spans: PipelineSpan[];
}

/**
 * docs/protocol.md ZO_FORWARD: L_c = copy_loss_sums[c] / copy_weight_sums[c] (over all micro-batches of the step),
 * g_i = (L_2i − L_2i+1) / (2·eps). Throws on a non-finite g (ZO_STEP would refuse it anyway, less clearly).
 */
export function projectedGradients(copyLossSums: readonly number[], copyWeightSums: readonly number[], eps: number): { copyLosses: number[]; g: number[] } {
  if (copyLossSums.length !== copyWeightSums.length || copyLossSums.length % 2 !== 0 || copyLossSums.length === 0) {
    throw new Error(`P-RGE: need an even, non-zero number of copy losses with matching weights, got ${copyLossSums.length} and ${copyWeightSums.length}`);
  }
  const copyLosses = copyLossSums.map((sum, c) => {
    if (!(copyWeightSums[c] > 0)) throw new Error(`P-RGE: copy ${c} has no loss weight (a batch without targets?)`);
    return sum / copyWeightSums[c];
  });
  const g: number[] = [];
  for (let i = 0; 2 * i < copyLosses.length; i++) {
    const gi = (copyLosses[2 * i] - copyLosses[2 * i + 1]) / (2 * eps);
    if (!Number.isFinite(gi)) {
      throw new Error(`P-RGE: projected gradient of query ${i} is ${gi} (losses ${copyLosses[2 * i]} / ${copyLosses[2 * i + 1]}): lower eps or the learning rate`);
    }
    g.push(gi);
  }
  return { copyLosses, g };
}

/**
 * One ZO training step. `micros` are the step's micro-batches as collateBatch builds them (job.ts's `micros`); each
 * becomes queries / queriesPerOp ZO_FORWARD ops of 2·queriesPerOp copies. Every stage is updated with the same (seed, step, g, lr), concurrently.
 */
export async function zoStep(stages: StageHandle[], micros: MicroBatch[], o: ZoStepOptions): Promise<ZoStepResult> {
  const zo = { seed: o.seed, step: o.step, queries: o.queries, eps: o.eps };
  const pass = await runZoForwardPass(stages, micros, zo, { nowMs: o.nowMs, relay: o.relay, queriesPerOp: o.queriesPerOp });
  const { copyLosses, g } = projectedGradients(pass.copyLossSums, pass.copyWeightSums, o.eps);
  await Promise.all(stages.map((s) => s.client.zoStep({ seed: o.seed, step: o.step, lr: o.lr, g })));
  return {
    loss: copyLosses.reduce((a, b) => a + b, 0) / copyLosses.length,
    copyLosses,
    projectedGradients: g,
    weightSum: pass.copyWeightSums[0],
    relayBytes: pass.relayBytes,
    spans: pass.spans,
  };
}
