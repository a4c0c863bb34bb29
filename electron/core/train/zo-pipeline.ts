// The forward-only pipeline pass of P-RGE: every micro-batch goes through the stages as ZO_FORWARD ops holding its
// perturbed copies, stages overlapping on different ops, and the last stage's per-copy loss sums are accumulated
// over the step. Not the update (zo-step.ts) and not the backprop 1F1B pass (pipeline.ts).
//
// An op carries one micro-batch (a slice of the minibatch's sequences) with the copies of `queriesPerOp` of the
// step's queries (ZO_FORWARD first_query says which): all 2q copies in one op by default, which keeps the engine's
// batched low-rank path at its widest (one pass over the base weights for all copies); fewer per op gives the
// pipeline more, smaller ops per step, so the fill and drain of a multi-stage pipeline cost less (plan/zo-ops.ts).
// docs/protocol.md defines the per-copy loss over all micro-batches of a step for exactly this split.
import type { PipelineSpan, RelayDtype } from '../api/types.js';
import { FORWARD_FLAG_RELAY_F16, type Tensor } from '../protocol/messages.js';
import type { MicroBatch, StageHandle } from './pipeline.js';

export interface ZoPerturbation {
  /** Keys z on every stage (u64 on the wire; below 2^53 here). */
  seed: number;
  /** Keys z together with seed: the training step (u32). */
  step: number;
  /** q: the number of random directions; each micro-batch runs 2q copies. */
  queries: number;
  /** Perturbation size (B ± eps·z_i), > 0. */
  eps: number;
}

export interface ZoPassResult {
  /** Per copy c (2q entries; 2i = +eps, 2i+1 = −eps of query i): Σ mask·CE over all micro-batches. */
  copyLossSums: number[];
  /** Per copy: Σ mask over all micro-batches (the same for every copy: each holds the same data). */
  copyWeightSums: number[];
  /** Hidden-state bytes relayed through the host (each tensor once). */
  relayBytes: number;
  spans: PipelineSpan[];
}

/** `copies` copies of `rows` (C-order [rows, …]) stacked copy-major, as ZO_FORWARD wants its batch. */
export function repeatCopies<T extends Int32Array | Float32Array>(data: T, copies: number): T {
  const out = new (data.constructor as { new (n: number): T })(data.length * copies);
  for (let c = 0; c < copies; c++) out.set(data, c * data.length);
  return out;
}

interface Slot<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function slot<T>(): Slot<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // whoever awaits observes the rejection; avoid unhandled-rejection noise
  return { promise, resolve, reject };
}

/**
 * Runs ZO_FORWARD of every op (micro-batch i, query group g: op i·G + g) through `stages` (ordered first to last).
 * Each stage handles the ops in order, so stage s works on op k while stage s+1 works on k−1. A request is sent the
 * moment its input exists, without waiting for the stage's previous reply (the client keeps a couple on the wire,
 * agent-client.ts pipelineDepth), so a stage with input waiting starts it as soon as it answers the one before.
 * `relay` f16 (ZO_FORWARD flags bit 2) has the agents answer hidden states as f16, which the next stage takes as is:
 * half the bytes over every link. LoRA values are not changed (that is ZO_STEP's job).
 */
export async function runZoForwardPass(
  stages: StageHandle[],
  micros: MicroBatch[],
  zo: ZoPerturbation,
  opts: { nowMs?: () => number; relay?: RelayDtype; queriesPerOp?: number } = {},
): Promise<ZoPassResult> {
  if (stages.length === 0) throw new Error('P-RGE pass: no stages');
  if (micros.length === 0) throw new Error('P-RGE pass: no micro-batches');
  if (!Number.isInteger(zo.queries) || zo.queries < 1) throw new Error(`P-RGE pass: queries must be an integer >= 1, got ${zo.queries}`);
  const perOp = opts.queriesPerOp ?? zo.queries;
  if (!Number.isInteger(perOp) || perOp < 1 || zo.queries % perOp !== 0) {
    throw new Error(`P-RGE pass: queries per op must divide the ${zo.queries} queries, got ${perOp}`);
  }
  const S = stages.length;
  const groups = zo.queries / perOp;
  const copies = 2 * perOp; // per op
  const ops = micros.flatMap((mb) => Array.from({ length: groups }, (_, g) => ({ mb, firstQuery: g * perOp })));
  const flags = opts.relay === 'f16' ? FORWARD_FLAG_RELAY_F16 : 0;
  const now = opts.nowMs ?? (() => performance.now());
  const inputs = stages.map(() => ops.map(() => slot<Tensor>()));
  ops.forEach(({ mb }, k) => inputs[0][k].resolve({ dtype: 'i32', dims: [copies * mb.batchSize, mb.seqLen], data: repeatCopies(mb.tokens, copies) }));

  const result: ZoPassResult = { copyLossSums: new Array(2 * zo.queries).fill(0), copyWeightSums: new Array(2 * zo.queries).fill(0), relayBytes: 0, spans: [] };
  const failAll = (e: unknown) => {
    for (const row of inputs) for (const d of row) d.reject(e);
  };

  const runStage = async (s: number) => {
    const { client, serial } = stages[s];
    const last = s === S - 1;
    // A span runs from when the agent could start the op (input there, previous op answered) to its reply.
    let prevEndMs = -Infinity;
    const replies: Promise<void>[] = [];
    for (let k = 0; k < ops.length; k++) {
      const input = await inputs[s][k].promise;
      const readyMs = now();
      const { mb, firstQuery } = ops[k];
      const rows = copies * mb.batchSize;
      const handled = client.zoForward({
        ...zo,
        queries: perOp,
        firstQuery,
        flags,
        input,
        targets: last ? { dtype: 'i32', dims: [rows, mb.seqLen], data: repeatCopies(mb.targets, copies) } : undefined,
        mask: last ? { dtype: 'f32', dims: [rows, mb.seqLen], data: repeatCopies(mb.mask, copies) } : undefined,
      }).then((reply) => {
        if (reply.outputKind === 1) {
          if (!last) throw new Error(`stage ${s} on ${serial} answered losses but is not the last stage (does it hold the head?)`);
          if (reply.copyLossSums.length !== copies) throw new Error(`${serial} returned ${reply.copyLossSums.length} copy losses for ${copies} copies`);
          // The op's copy c is the step's copy 2·firstQuery + c.
          reply.copyLossSums.forEach((x, c) => (result.copyLossSums[2 * firstQuery + c] += x));
          reply.copyWeightSums.forEach((x, c) => (result.copyWeightSums[2 * firstQuery + c] += x));
        } else {
          if (last) throw new Error(`the last stage on ${serial} answered a hidden state, not losses (does it hold the head?)`);
          result.relayBytes += reply.hidden.data.byteLength;
          inputs[s + 1][k].resolve(reply.hidden);
        }
        const endMs = now();
        result.spans.push({ stage: s, serial, kind: 'F', micro: k, startMs: Math.max(readyMs, prevEndMs), endMs });
        prevEndMs = endMs;
      });
      handled.catch(failAll); // a failed op releases the stages waiting on it at once
      replies.push(handled);
    }
    await Promise.all(replies);
  };

  await Promise.all(stages.map((_, s) => runStage(s).catch((e) => {
    failAll(e);
    throw e;
  })));
  return result;
}
