// The incremental-decoding ONNX graph of a Llama: new token ids plus the cached keys/values of every earlier
// position -> logits of the new tokens and the new tokens' keys/values (to append to the cache). Graph only; the
// cache itself is ort-kv-cache.ts, the decoding loop ort-decode.ts.
//
// Why the past arrives as one (P, D) input per layer, batch row and KV head ("slot"), and why only the new rows
// come out (measured with onnxruntime-node 1.30 on CPU):
// - A feed costs nothing: the binding wraps the typed array's memory (a 256 MiB view is fed in 0.05 ms). So the
//   cache can stay one preallocated buffer and each step feeds views of its first P rows.
// - An output always costs a copy of the whole tensor: every fetched output is copied into a new ArrayBuffer, even a
//   preallocated one passed in `fetches`. Binding the cache as output to the input's buffer (com.microsoft
//   GroupQueryAttention with past_present_share_buffer, or ScatterND) does write in place, but the copy back to JS
//   costs O(max length) per token: 0.4-0.7 s per token for a 2 x 128 MiB cache, 0.25-1.3 s for ScatterND on 256 MiB.
//   So the cache is never an output; the graph returns only the T_new new rows per layer.
// - ONNX has no strided tensors, and the first P rows of a (B, KV, M, D) buffer are not contiguous across heads.
//   The first P rows of one slot's (M, D) region are, so each slot is its own input, and attention runs per slot as
//   Gemm(q, K_past, transB) (no transpose copy) beside the scores of the new keys.
// The position offset of the new tokens is P, the views' row count, so it can never disagree with the cache.
import type { ModelConfig } from '../model/hf-config.js';
import { ElemType, GraphBuilder } from './graph-builder.js';
import { checkShape, embedTokens, lmHeadOutput, MODEL_INPUT, seqLenOf } from './llama-graph.js';
import { decoderLayer, layerContext, outputProjection, projectQkv, type AttentionFn, type LlamaGraphOptions, type WeightMap } from './llama-ops.js';

export { MODEL_INPUT, MODEL_OUTPUT } from './llama-graph.js';

/** Cached keys/values of layer `layer`, slot `slot` = batchRow * numKvHeads + kvHead: f32 (P, headDim). */
export const pastKeyName = (layer: number, slot: number) => `past_key.${layer}.${slot}`;
export const pastValueName = (layer: number, slot: number) => `past_value.${layer}.${slot}`;
/** The new tokens' keys (RoPE applied) and values of layer `layer`: f32 (B, numKvHeads, T_new, headDim). */
export const newKeyName = (layer: number) => `new_key.${layer}`;
export const newValueName = (layer: number) => `new_value.${layer}`;

export interface DecoderGraphOptions extends LlamaGraphOptions {
  /** Rows decoded together (fixed: each row's cache is its own inputs). Default 1. */
  batch?: number;
}

/** Attention over the fed past (per slot) and the new keys, which it also declares as graph outputs. */
function cachedAttention(batch: number): AttentionFn {
  return (g, c, w, layer, x, ctx, opts) => {
    const KV = c.numKvHeads;
    const D = c.headDim;
    const slots = batch * KV;
    const { q, k, v } = projectQkv(g, c, w, layer, x, ctx, opts); // q (B, KV, G*T, D), k/v (B, KV, T, D)
    g.output(k, newKeyName(layer), ElemType.FLOAT, [batch, KV, 'seq', D]);
    g.output(v, newValueName(layer), ElemType.FLOAT, [batch, KV, 'seq', D]);
    const perSlot = (t: string) =>
      g.opN('Split', [g.op('Reshape', [t, g.constI64([slots, -1, D])])], slots, { axis: { i: 0 } }).map((s) => g.op('Squeeze', [s, g.constI64([0])]));
    const qs = perSlot(q); // each (G*T, D)
    const ks = perSlot(k); // each (T, D)
    const vs = perSlot(v);
    const scale = 1 / Math.sqrt(D);
    const outs = qs.map((qi, s) => {
      const pastK = g.input(pastKeyName(layer, s), ElemType.FLOAT, ['past', D]);
      const pastV = g.input(pastValueName(layer, s), ElemType.FLOAT, ['past', D]);
      // Scaled after the product, as attention() does, so both graphs round the same way.
      const raw = g.op('Concat', [
        g.op('Gemm', [qi, pastK], { transB: { i: 1 } }), // (G*T, P)
        g.op('Gemm', [qi, ks[s]!], { transB: { i: 1 } }), // (G*T, T)
      ], { axis: { i: 1 } });
      const scores = g.op('Mul', [raw, g.constF32(scale)]);
      const probs = g.op('Softmax', [g.op('Add', [scores, ctx.mask])], { axis: { i: -1 } }); // (G*T, P+T)
      const P = g.op('Shape', [pastK], { start: { i: 0 }, end: { i: 1 } });
      const probsPast = g.op('Slice', [probs, g.constI64([0]), P, g.constI64([1])]);
      const probsNew = g.op('Slice', [probs, P, g.constI64([Number.MAX_SAFE_INTEGER]), g.constI64([1])]);
      return g.op('Add', [g.op('MatMul', [probsPast, pastV]), g.op('MatMul', [probsNew, vs[s]!])]); // (G*T, D)
    });
    const ctxOut = g.op('Reshape', [g.op('Concat', outs, { axis: { i: 0 } }), g.constI64([batch, KV, -1, D])]); // (B, KV, G*T, D)
    return outputProjection(g, c, w, layer, ctxOut, opts);
  };
}

/**
 * Inputs `input_ids` int64 (B, T_new) and, per layer and slot, `past_key.L.S` / `past_value.L.S` f32 (P, D);
 * outputs `logits` f32 (B, T_new, vocab) and `new_key.L` / `new_value.L` f32 (B, KV, T_new, D). P may be 0.
 */
export function buildDecoderGraph(c: ModelConfig, w: WeightMap, opts: DecoderGraphOptions = {}): Uint8Array {
  checkShape(c);
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`ONNX decoder graph: batch must be a positive integer, got ${batch}`);
  const g = new GraphBuilder('llama_decoder');
  const idsDims = [batch, 'seq'];
  const ids = g.input(MODEL_INPUT, ElemType.INT64, idsDims);
  const { hidden, embedInit } = embedTokens(g, c, w, ids);
  const T = seqLenOf(g, ids);
  // P from the first slot's past keys: every slot of every layer holds the same number of rows.
  const P = g.op('Squeeze', [g.op('Shape', [pastKeyName(0, 0)], { start: { i: 0 }, end: { i: 1 } }), g.constI64([0])]);
  const ctx = layerContext(g, c, P, T, g.op('Add', [P, T]));
  const attend = cachedAttention(batch);
  let h = hidden;
  for (let layer = 0; layer < c.numLayers; layer++) h = decoderLayer(g, c, w, layer, h, ctx, opts, attend);
  lmHeadOutput(g, c, w, h, embedInit, ids, idsDims);
  return g.toBytes({ docString: `Llama ${c.numLayers} layers, incremental decoding with a KV cache (batch ${batch})` });
}
