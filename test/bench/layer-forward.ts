// One decoder layer forward, B=1: the agent (a middle stage holding just this layer, FORWARD keep=false, and
// PROFILE when the agent has it) against onnxruntime running the ONNX graph of the same weights, same threads.
import { basename, join } from 'node:path';
import { openModelFolder } from '../../electron/core/model/model-folder.js';
import { packStage, type PackResult, type WeightFormat } from '../../electron/core/model/stage-pack.js';
import { buildLayerGraph, LAYER_INPUT, LAYER_OUTPUT, readLlamaWeights } from '../../electron/core/onnx/llama-graph.js';
import { OrtRunner } from '../../electron/core/onnx/ort-runner.js';
import type { ModelConfig } from '../../electron/core/model/hf-config.js';
import { FORWARD_OUTPUT_HIDDEN, type ForwardReply } from '../../electron/core/protocol/messages.js';
import { hiddenInput, isUnknownCommand, reasonOf, startBenchAgent, stopBenchAgent, timedRequest, type BenchAgent } from './agent-bench.js';
import { layerForwardFlops, type LayerFlops } from './flops.js';
import { measure, type Timing } from './measure.js';

export interface LayerForwardResult {
  seqLen: number;
  batch: number;
  flops: LayerFlops;
  ours: {
    /** Agent compute time per FORWARD (STATS busy_us delta). */
    busyMs: Timing;
    /** Round trip over the AgentClient (adds the 2 * T * C * 4 bytes of loopback TCP and encoding). */
    wallMs: Timing;
    gflops: number;
    /** PROFILE's per-layer forward median for this shape, or null (profileReason says why). */
    profileForwardMs: number | null;
    profileReason?: string;
  };
  ort: {
    /** Inside session.run on the worker thread. */
    runMs: Timing;
    /** Round trip from the calling thread (adds the worker message copies). */
    wallMs: Timing;
    gflops: number;
  };
  /** ours busy / ORT session.run (compute against compute): above 1 = ours slower. */
  oursOverOrt: number;
  /** ours round trip / ORT round trip. */
  oursOverOrtRoundTrip: number;
  /** max |ours - ORT| over the output: both engines computed the same layer. */
  maxAbsDiff: number;
}

export interface LayerForwardSection {
  ortCreateMs: number;
  results: LayerForwardResult[];
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function profileLayer(a: BenchAgent, seqLen: number): Promise<{ ms: number | null; reason?: string }> {
  if (typeof a.client.profile !== 'function') return { ms: null, reason: 'AgentClient has no profile() in this checkout' };
  try {
    const p = await a.client.profile({ batch: 1, seqLen, reps: 3 });
    // The primary backend's entry (the first listed); OpenCL entries are for split planning, not this comparison.
    const primary = p.backends[0]?.name;
    const layer = p.layers.find((l) => l.backend === primary) ?? p.layers[0];
    return layer ? { ms: layer.forwardMs } : { ms: null, reason: 'PROFILE reply has no layer entries' };
  } catch (err) {
    return { ms: null, reason: isUnknownCommand(err) ? `this agent build has no PROFILE (${reasonOf(err)})` : reasonOf(err) };
  }
}

/** Packs layer 0 of `modelDir` as a middle stage (no embedding, no head) in `weightFormat`. */
export async function packLayerStage(modelDir: string, workDir: string, weightFormat: WeightFormat = 'f32'): Promise<{ path: string; result: PackResult }> {
  const path = join(workDir, `${basename(modelDir)}-layer0-${weightFormat}.stage`);
  const result = await packStage(modelDir, { layerStart: 0, layerEnd: 1, hasEmbedding: false, hasHead: false }, path, { weightFormat });
  return { path, result };
}

export async function benchLayerForward(modelDir: string, c: ModelConfig, stagePath: string, seqLens: number[], threads: number, quick: boolean, log: (s: string) => void): Promise<LayerForwardSection & { agent: Pick<BenchAgent, 'threadsFlag' | 'helloThreads' | 'backends'> }> {
  const folder = await openModelFolder(modelDir);
  const results: LayerForwardResult[] = [];
  const oursOut = new Map<number, { timing: Omit<LayerForwardResult['ours'], 'gflops'>; output: Float32Array }>();

  const a = await startBenchAgent(threads);
  try {
    await a.client.loadStage({ path: stagePath, loraRank: 0, loraAlpha: 0, targetMask: 0, flags: 0 });
    for (const T of seqLens) {
      log(`  ours  hidden ${c.hiddenSize} T=${T}`);
      const input = hiddenInput(1, T, c.hiddenSize, 1000 + T);
      let output: Float32Array | undefined;
      const t = await measure(async () => {
        const r = await timedRequest(a.client, () => a.client.forward({ microId: 1, flags: 0, input }));
        const reply = r.result as ForwardReply;
        if (reply.outputKind === FORWARD_OUTPUT_HIDDEN) output ??= reply.hidden.data as Float32Array;
        return { wallMs: r.wallMs, busyMs: r.busyMs };
      }, { quick });
      const prof = await profileLayer(a, T);
      oursOut.set(T, {
        timing: { busyMs: t.busyMs!, wallMs: t.wallMs!, profileForwardMs: prof.ms, ...(prof.reason ? { profileReason: prof.reason } : {}) },
        output: output ?? new Float32Array(),
      });
    }
  } finally {
    await stopBenchAgent(a);
  }

  log(`  onnxruntime graph for hidden ${c.hiddenSize}`);
  const ort = await OrtRunner.create(buildLayerGraph(c, 0, await readLlamaWeights(folder, { layers: [0] })), { intraOpNumThreads: threads });
  try {
    for (const T of seqLens) {
      log(`  ORT   hidden ${c.hiddenSize} T=${T}`);
      const input = hiddenInput(1, T, c.hiddenSize, 1000 + T);
      let output: Float32Array | undefined;
      const t = await measure(async () => {
        const t0 = performance.now();
        const r = await ort.run({ [LAYER_INPUT]: { type: 'float32', dims: [1, T, c.hiddenSize], data: input.data as Float32Array } });
        const wallMs = performance.now() - t0;
        output ??= r.outputs[LAYER_OUTPUT]!.data as Float32Array;
        return { wallMs, runMs: r.runMs };
      }, { quick });
      const flops = layerForwardFlops(c, 1, T);
      const ours = oursOut.get(T)!;
      results.push({
        seqLen: T,
        batch: 1,
        flops,
        ours: { ...ours.timing, gflops: flops.total / ours.timing.busyMs.medianMs / 1e6 },
        ort: { runMs: t.runMs!, wallMs: t.wallMs!, gflops: flops.total / t.runMs!.medianMs / 1e6 },
        oursOverOrt: ours.timing.busyMs.medianMs / t.runMs!.medianMs,
        oursOverOrtRoundTrip: ours.timing.wallMs.medianMs / t.wallMs!.medianMs,
        maxAbsDiff: maxAbsDiff(ours.output, output!),
      });
    }
    return { ortCreateMs: ort.createMs, results, agent: { threadsFlag: a.threadsFlag, helloThreads: a.helloThreads, backends: a.backends } };
  } finally {
    await ort.close();
  }
}
