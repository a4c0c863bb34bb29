// The forward-only pipeline pass of P-RGE: every micro-batch goes through the stages as one ZO_FORWARD holding its
// 2q perturbed copies, stages overlapping on different micro-batches, and the last stage's per-copy loss sums are
// accumulated over the step. Not the update (zo-step.ts) and not the backprop 1F1B pass (pipeline.ts).
//
// Why micro-batches are slices of the minibatch's sequences and not groups of copies: ZO_FORWARD keys copy 2i/2i+1
// to z_i for i = 0 … queries−1 of the request, so a request cannot carry "queries 2 and 3" of a step; and keeping
// all 2q copies in one request keeps the engine's batched low-rank path (one pass over the base weights for all
// copies). docs/protocol.md defines the per-copy loss over all micro-batches of a step for exactly this split.
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
 * Runs ZO_FORWARD of every micro-batch through `stages` (ordered first to last). Each stage handles the
 * micro-batches in order, so stage s works on micro-batch k while stage s+1 works on k−1. A request is sent the
 * moment its input exists, without waiting for the stage's previous reply (the client keeps a couple on the wire,
 * agent-client.ts pipelineDepth), so a stage with input waiting starts it as soon as it answers the one before.
 * `relay` f16 (ZO_FORWARD flags bit 2) has the agents answer hidden states as f16, which the next stage takes as is:
 * half the bytes over every link. LoRA values are not changed (that is ZO_STEP's job).
 */
export async function runZoForwardPass(
  stages: StageHandle[],
  micros: MicroBatch[],
  zo: ZoPerturbation,
  opts: { nowMs?: () => number; relay?: RelayDtype } = {},
): Promise<ZoPassResult> {
  if (stages.length === 0) throw new Error('P-RGE pass: no stages');
  if (micros.length === 0) throw new Error('P-RGE pass: no micro-batches');
  if (!Number.isInteger(zo.queries) || zo.queries < 1) throw new Error(`P-RGE pass: queries must be an integer >= 1, got ${zo.queries}`);
  const S = stages.length;
  const copies = 2 * zo.queries;
  const flags = opts.relay === 'f16' ? FORWARD_FLAG_RELAY_F16 : 0;
  const now = opts.nowMs ?? (() => performance.now());
  const inputs = stages.map(() => micros.map(() => slot<Tensor>()));
  micros.forEach((mb, i) => inputs[0][i].resolve({ dtype: 'i32', dims: [copies * mb.batchSize, mb.seqLen], data: repeatCopies(mb.tokens, copies) }));

  const result: ZoPassResult = { copyLossSums: new Array(copies).fill(0), copyWeightSums: new Array(copies).fill(0), relayBytes: 0, spans: [] };
  const failAll = (e: unknown) => {
    for (const row of inputs) for (const d of row) d.reject(e);
  };

  const runStage = async (s: number) => {
    const { client, serial } = stages[s];
    const last = s === S - 1;
    // A span runs from when the agent could start the op (input there, previous op answered) to its reply.
    let prevEndMs = -Infinity;
    const replies: Promise<void>[] = [];
    for (let i = 0; i < micros.length; i++) {
      const input = await inputs[s][i].promise;
      const readyMs = now();
      const mb = micros[i];
      const rows = copies * mb.batchSize;
      const handled = client.zoForward({
        ...zo,
        flags,
        input,
        targets: last ? { dtype: 'i32', dims: [rows, mb.seqLen], data: repeatCopies(mb.targets, copies) } : undefined,
        mask: last ? { dtype: 'f32', dims: [rows, mb.seqLen], data: repeatCopies(mb.mask, copies) } : undefined,
      }).then((reply) => {
        if (reply.outputKind === 1) {
          if (!last) throw new Error(`stage ${s} on ${serial} answered losses but is not the last stage (does it hold the head?)`);
          if (reply.copyLossSums.length !== copies) throw new Error(`${serial} returned ${reply.copyLossSums.length} copy losses for ${copies} copies`);
          reply.copyLossSums.forEach((x, c) => (result.copyLossSums[c] += x));
          reply.copyWeightSums.forEach((x, c) => (result.copyWeightSums[c] += x));
        } else {
          if (last) throw new Error(`the last stage on ${serial} answered a hidden state, not losses (does it hold the head?)`);
          result.relayBytes += reply.hidden.data.byteLength;
          inputs[s + 1][i].resolve(reply.hidden);
        }
        const endMs = now();
        result.spans.push({ stage: s, serial, kind: 'F', micro: i, startMs: Math.max(readyMs, prevEndMs), endMs });
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
