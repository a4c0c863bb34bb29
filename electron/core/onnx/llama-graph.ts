// Whole ONNX graphs of a Hugging Face Llama: one decoder layer (hidden -> hidden, what a middle pipeline stage
// computes) and the full model (input_ids -> logits). Graph inputs/outputs only; the layer math is llama-ops.ts.
import type { ModelConfig } from '../model/hf-config.js';
import { layerTensorShapes, readModelTensorF32, type ModelFolder } from '../model/model-folder.js';
import { ElemType, GraphBuilder, type Dim } from './graph-builder.js';
import { decoderLayer, layerContext, rmsNorm, type LlamaGraphOptions, type WeightMap } from './llama-ops.js';

export type { LlamaGraphOptions, WeightMap };

/** Graph input/output names (stable: runners and tests refer to them). */
export const LAYER_INPUT = 'hidden';
export const LAYER_OUTPUT = 'hidden_out';
export const MODEL_INPUT = 'input_ids';
export const MODEL_OUTPUT = 'logits';

export function checkShape(c: ModelConfig): void {
  if (c.headDim % 2 !== 0) throw new Error(`ONNX Llama graph: head_dim ${c.headDim} must be even for rotate-half RoPE`);
  if (c.numHeads % c.numKvHeads !== 0) throw new Error(`ONNX Llama graph: ${c.numHeads} heads are not a multiple of ${c.numKvHeads} kv heads`);
}

/** (B, T) or (B, T, C) -> scalar T as an int64 graph value. */
export function seqLenOf(g: GraphBuilder, value: string): string {
  return g.op('Squeeze', [g.op('Shape', [value], { start: { i: 1 }, end: { i: 2 } }), g.constI64([0])]);
}

/** One decoder layer: input `hidden` f32 (B, T, C) at positions 0..T-1 -> output `hidden_out` f32 (B, T, C). */
export function buildLayerGraph(c: ModelConfig, layer: number, w: WeightMap, opts: LlamaGraphOptions = {}): Uint8Array {
  checkShape(c);
  const g = new GraphBuilder(`llama_layer_${layer}`);
  const hidden = g.input(LAYER_INPUT, ElemType.FLOAT, ['batch', 'seq', c.hiddenSize]);
  const T = seqLenOf(g, hidden);
  const ctx = layerContext(g, c, g.constI64(0), T, T);
  const out = decoderLayer(g, c, w, layer, hidden, ctx, opts);
  g.output(out, LAYER_OUTPUT, ElemType.FLOAT, ['batch', 'seq', c.hiddenSize]);
  return g.toBytes({ docString: `Llama decoder layer ${layer} (hidden ${c.hiddenSize}, ${c.numHeads}/${c.numKvHeads} heads)` });
}

/** Token embedding: int64 ids (B, T) -> f32 (B, T, C), and the embedding initializer (shared by a tied head). */
export function embedTokens(g: GraphBuilder, c: ModelConfig, w: WeightMap, ids: string): { hidden: string; embedInit: string } {
  const embedName = 'model.embed_tokens.weight';
  const embed = w.get(embedName);
  if (!embed || embed.length !== c.vocabSize * c.hiddenSize) throw new Error(`ONNX Llama graph: ${embedName} [${c.vocabSize}, ${c.hiddenSize}] is missing or mis-sized`);
  const embedInit = g.initF32(embedName, [c.vocabSize, c.hiddenSize], embed);
  return { hidden: g.op('Gather', [embedInit, ids], { axis: { i: 0 } }), embedInit };
}

/** Final norm and LM head: hidden (B, T, C) -> logits (B, T, vocab), declared as the graph output `logits`. */
export function lmHeadOutput(g: GraphBuilder, c: ModelConfig, w: WeightMap, hidden: string, embedInit: string, ids: string, idsDims: readonly Dim[]): void {
  const h = rmsNorm(g, hidden, w, 'model.norm.weight', c);
  // The head as Gemm with transB reads the [vocab, C] matrix as stored, so tied embeddings share one initializer.
  let head = embedInit;
  if (!c.tieWordEmbeddings) {
    const lm = w.get('lm_head.weight');
    if (!lm || lm.length !== c.vocabSize * c.hiddenSize) throw new Error(`ONNX Llama graph: lm_head.weight [${c.vocabSize}, ${c.hiddenSize}] is missing or mis-sized`);
    head = g.initF32('lm_head.weight', [c.vocabSize, c.hiddenSize], lm);
  }
  const flat = g.op('Reshape', [h, g.constI64([-1, c.hiddenSize])]); // (B*T, C)
  const logits2d = g.op('Gemm', [flat, head], { transB: { i: 1 } }); // (B*T, V)
  const outShape = g.op('Concat', [g.op('Shape', [ids]), g.constI64([c.vocabSize])], { axis: { i: 0 } });
  g.output(g.op('Reshape', [logits2d, outShape]), MODEL_OUTPUT, ElemType.FLOAT, [...idsDims, c.vocabSize]);
}

/** The whole model: input `input_ids` int64 (B, T) -> output `logits` f32 (B, T, vocab). */
export function buildModelGraph(c: ModelConfig, w: WeightMap, opts: LlamaGraphOptions = {}): Uint8Array {
  checkShape(c);
  const g = new GraphBuilder('llama');
  const idsDims = ['batch', 'seq'];
  const ids = g.input(MODEL_INPUT, ElemType.INT64, idsDims);
  const { hidden, embedInit } = embedTokens(g, c, w, ids);
  let h = hidden; // (B, T, C)
  const T = seqLenOf(g, ids);
  const ctx = layerContext(g, c, g.constI64(0), T, T);
  for (let layer = 0; layer < c.numLayers; layer++) h = decoderLayer(g, c, w, layer, h, ctx, opts);
  lmHeadOutput(g, c, w, h, embedInit, ids, idsDims);
  return g.toBytes({ docString: `Llama ${c.numLayers} layers (hidden ${c.hiddenSize}, vocab ${c.vocabSize})` });
}

/** Reads the tensors a layer graph (`layers`) and, with `whole`, the embedding/norm/head need, as f32. */
export async function readLlamaWeights(folder: ModelFolder, opts: { layers?: number[]; whole?: boolean } = {}): Promise<Map<string, Float32Array>> {
  const c = folder.config;
  const layers = opts.layers ?? Array.from({ length: c.numLayers }, (_, i) => i);
  const names = layers.flatMap((i) => layerTensorShapes(c, i).map(([n]) => n));
  if (opts.whole) {
    names.push('model.embed_tokens.weight', 'model.norm.weight');
    if (!c.tieWordEmbeddings) names.push('lm_head.weight');
  }
  const out = new Map<string, Float32Array>();
  for (const n of names) out.set(n, await readModelTensorF32(folder, n));
  return out;
}
