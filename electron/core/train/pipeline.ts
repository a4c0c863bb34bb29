// Runs one pipeline step over the stage agents: every stage executes its op list (1F1B or forward-only) in order,
// and the host relays each micro-batch's activations forward and gradients backward between neighbouring stages.
// Not the planner and not deployment: it is handed connected agents that already hold their stage.
import type { AgentClient } from '../protocol/agent-client.js';
import { FORWARD_FLAG_KEEP_ACTIVATIONS, FORWARD_FLAG_RELAY_F16, FORWARD_FLAG_RETURN_LOGITS, FORWARD_OUTPUT_LOSS, type Tensor } from '../protocol/messages.js';
import type { Batch } from '../data/samples.js';
import type { PipelineSpan, RelayDtype } from '../api/types.js';
import { forwardOnly, oneFOneB, type PipeOp } from './schedule.js';

/** A micro-batch as FORWARD carries it: (B, T) token ids, next-token targets and loss weights. */
export type MicroBatch = Batch;

export interface StageHandle {
  serial: string;
  client: AgentClient;
}

/** One forward or backward of one micro-batch on one stage, for the pipeline timeline. */
export type OpSpan = PipelineSpan;

export interface PassResult {
  lossSum: number;
  weightSum: number;
  /** Activation and gradient bytes relayed through the host, each tensor counted once (it is read and written once). */
  relayBytes: number;
  spans: OpSpan[];
  /** Last-stage logits per micro-batch, when asked for. */
  logits: Array<Tensor | undefined>;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => undefined); // rejection is observed by whoever awaits; avoid unhandled-rejection noise
  return { promise, resolve, reject };
}

const tensorBytes = (t: Tensor) => t.data.byteLength;

function tokensTensor(mb: MicroBatch): Tensor {
  return { dtype: 'i32', dims: [mb.batchSize, mb.seqLen], data: mb.tokens };
}

/**
 * Runs `micros` through the stages. With `train`, runs 1F1B and the backward passes (LoRA gradients accumulate
 * on the agents; the caller steps the optimiser); `lossScale` must then be 1 / (total mask weight of the step).
 * `relay` f16 (FORWARD flags bit 2) has the agents answer hidden states and input gradients as f16, which the
 * next stage takes as they are: half the bytes each way, no conversion on the host. Relay overlaps with compute as
 * far as 1F1B allows: each stage runs its own op list concurrently and a tensor is handed on the moment it arrives,
 * so stage s computes its next op while stage s±1 receives this one.
 */
export async function runPass(
  stages: StageHandle[],
  micros: MicroBatch[],
  opts: { train: boolean; lossScale?: number; wantLogits?: boolean; nowMs?: () => number; relay?: RelayDtype },
): Promise<PassResult> {
  const S = stages.length;
  const m = micros.length;
  const now = opts.nowMs ?? (() => performance.now());
  // fwdIn[s][i]: input of stage s for micro-batch i; bwdIn[s][i]: gradient w.r.t. stage s's output.
  const fwdIn = stages.map(() => micros.map(() => deferred<Tensor>()));
  const bwdIn = stages.map(() => micros.map(() => deferred<Tensor | undefined>()));
  micros.forEach((mb, i) => fwdIn[0][i].resolve(tokensTensor(mb)));

  const result: PassResult = { lossSum: 0, weightSum: 0, relayBytes: 0, spans: [], logits: micros.map(() => undefined) };
  const failAll = (e: unknown) => {
    for (const grid of [fwdIn, bwdIn]) for (const row of grid) for (const d of row) d.reject(e);
  };

  // Each op is sent the moment its input exists, without waiting for the stage's previous reply: the agent answers
  // in order and the client keeps a couple on the wire (agent-client.ts pipelineDepth), so a stage with work
  // waiting starts it as soon as it finishes the last one instead of a host round trip later. A reply is handled
  // when it arrives, which is what releases the next stage's input.
  const runStage = async (s: number, ops: PipeOp[]) => {
    const { client, serial } = stages[s];
    const last = s === S - 1;
    // A span runs from when the agent could start the op (its input is there and the op before it answered) to its
    // reply; replies come in order, so the previous span has ended by the time this one is handled.
    let prevEndMs = -Infinity;
    const span = (kind: 'F' | 'B', micro: number, readyMs: number) => {
      const endMs = now();
      result.spans.push({ stage: s, serial, kind, micro, startMs: Math.max(readyMs, prevEndMs), endMs });
      prevEndMs = endMs;
    };
    const replies: Promise<void>[] = [];
    for (const op of ops) {
      const i = op.micro;
      let handled: Promise<void>;
      if (op.kind === 'F') {
        const input = await fwdIn[s][i].promise;
        const readyMs = now();
        const flags = (opts.train ? FORWARD_FLAG_KEEP_ACTIVATIONS : 0) | (last && opts.wantLogits ? FORWARD_FLAG_RETURN_LOGITS : 0) |
          // On every stage: the last one has no hidden reply, but its BACKWARD's input gradient is relayed too.
          (opts.relay === 'f16' ? FORWARD_FLAG_RELAY_F16 : 0);
        const mb = micros[i];
        handled = client.forward({
          microId: i,
          flags,
          input,
          targets: last ? { dtype: 'i32', dims: [mb.batchSize, mb.seqLen], data: mb.targets } : undefined,
          mask: last ? { dtype: 'f32', dims: [mb.batchSize, mb.seqLen], data: mb.mask } : undefined,
        }).then((reply) => {
          if (reply.outputKind === FORWARD_OUTPUT_LOSS) {
            result.lossSum += reply.lossSum;
            result.weightSum += reply.weightSum;
            result.logits[i] = reply.logits;
            bwdIn[s][i].resolve(undefined);
          } else {
            result.relayBytes += tensorBytes(reply.hidden);
            fwdIn[s + 1][i].resolve(reply.hidden);
          }
          span('F', i, readyMs);
        });
      } else {
        const gradOutput = await bwdIn[s][i].promise;
        const readyMs = now();
        handled = client.backward({ microId: i, lossScale: opts.lossScale ?? 1, gradOutput }).then((reply) => {
          if (s > 0) {
            if (!reply.gradInput) throw new Error(`stage ${s} on ${serial} returned no input gradient for micro-batch ${i}`);
            result.relayBytes += tensorBytes(reply.gradInput);
            bwdIn[s - 1][i].resolve(reply.gradInput);
          }
          span('B', i, readyMs);
        });
      }
      // A failed op releases every stage waiting on it at once (failAll), not when this loop next looks.
      handled.catch(failAll);
      replies.push(handled);
    }
    await Promise.all(replies);
  };

  await Promise.all(
    stages.map((_, s) =>
      runStage(s, opts.train ? oneFOneB(S, m, s) : forwardOnly(m)).catch((e) => {
        failAll(e);
        throw e;
      }),
    ),
  );
  return result;
}

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clip across all stages; 0 disables clipping. */
  maxGradNorm: number;
}

/** Clips by the global LoRA gradient norm (every stage reports its squared norm) and steps AdamW everywhere. */
export async function optimizerStep(stages: StageHandle[], step: number, lr: number, a: AdamWSettings): Promise<{ gradNorm: number }> {
  const squares = await Promise.all(stages.map((s) => s.client.gradNorm()));
  const gradNorm = Math.sqrt(squares.reduce((x, y) => x + y, 0));
  const gradScale = a.maxGradNorm > 0 && gradNorm > a.maxGradNorm ? a.maxGradNorm / gradNorm : 1;
  await Promise.all(
    stages.map((s) => s.client.optimStep({ step, lr, beta1: a.beta1, beta2: a.beta2, eps: a.eps, weightDecay: a.weightDecay, gradScale })),
  );
  return { gradNorm };
}

/** What one training step of any mode reports back to the job. */
export interface StepOutcome {
  /** Mean loss of the step's trained tokens. */
  loss: number;
  gradNorm: number;
  relayBytes: number;
  spans: OpSpan[];
}

/**
 * One backprop step: 1F1B forward/backward of every micro-batch (gradients of the step's mean loss), then the
 * globally clipped AdamW step on every stage. `weight` is the step's total mask weight.
 */
export async function backpropStep(
  stages: StageHandle[],
  micros: MicroBatch[],
  o: { step: number; lr: number; weight: number; adamw: AdamWSettings; relay: RelayDtype },
): Promise<StepOutcome> {
  const pass = await runPass(stages, micros, { train: true, lossScale: 1 / o.weight, relay: o.relay });
  const { gradNorm } = await optimizerStep(stages, o.step, o.lr, o.adamw);
  return { loss: pass.lossSum / pass.weightSum, gradNorm, relayBytes: pass.relayBytes, spans: pass.spans };
}
