// How a P-RGE step is cut into pipeline ops: each micro-batch's 2q perturbed copies may ride in one ZO_FORWARD or
// be spread over several (ZO_FORWARD first_query), so a pipeline of S stages fills and drains on smaller ops: the
// bubble is (S - 1) / (ops + S - 1) with ops = micro-batches x q / queriesPerOp. Not the pass itself (zo-pipeline.ts).
import type { TrainShape } from './memory.js';

/**
 * Fewest activation rows (copies x sequences x tokens) one ZO_FORWARD is cut down to. Measured on this repo's 2-core
 * VM (docs/engine.md "P-RGE ops"), hidden 1024, 64 tokens, steps alternating the split in one run: 256 rows ran as
 * fast per row as 512 on one agent (3215 vs 3197 ms/step) and cut two agents' step by 4% (1900 vs 1974 ms); 128 rows
 * was 4% slower per row (3338 ms), the matmuls too short to keep the cores fed.
 */
export const MIN_ZO_OP_ROWS = 256;

type ZoShape = Pick<TrainShape, 'mode' | 'microBatchSize' | 'seqLen' | 'zoQueries' | 'zoQueriesPerOp'>;

/** The default queries per op for q queries: the smallest divisor of q whose op still has MIN_ZO_OP_ROWS rows. */
export function defaultZoQueriesPerOp(queries: number, microBatchSize: number, seqLen: number): number {
  for (let d = 1; d < queries; d++) {
    if (queries % d === 0 && 2 * d * microBatchSize * seqLen >= MIN_ZO_OP_ROWS) return d;
  }
  return queries;
}

/** Queries per ZO_FORWARD op (zo mode): the setting, else all q in one op. */
export function queriesPerOp(t: ZoShape): number {
  return t.zoQueriesPerOp ?? t.zoQueries ?? 1;
}

/** Sequences in one op's batch: the micro-batch, times 2·queriesPerOp copies in zo mode. */
export function opBatchSize(t: ZoShape): number {
  return t.microBatchSize * (t.mode === 'zo' ? 2 * queriesPerOp(t) : 1);
}

/** Ops per stage per step: one per micro-batch, or q / queriesPerOp per micro-batch in zo mode. */
export function opsPerStep(t: ZoShape & { microBatches: number }): number {
  return t.microBatches * (t.mode === 'zo' ? (t.zoQueries ?? 1) / queriesPerOp(t) : 1);
}

/** Throws unless `perOp` is a divisor of `queries` (a step's queries split into equal ops). */
export function checkZoQueriesPerOp(queries: number, perOp: number): void {
  if (!Number.isInteger(perOp) || perOp < 1 || queries % perOp !== 0) {
    throw new Error(`queries per op must be a divisor of the ${queries} P-RGE queries, got ${perOp}`);
  }
}
