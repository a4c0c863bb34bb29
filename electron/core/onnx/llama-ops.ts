// The pieces of a Hugging Face Llama decoder as ONNX subgraphs: RMSNorm, linear (+bias, +LoRA), rotate-half RoPE,
// GQA causal attention, SwiGLU MLP, one decoder layer. Not whole graphs (llama-graph.ts) and not a runtime.
//
// Semantics follow transformers' modeling_llama.py (the spec our agent is checked against): RMSNorm
// x / sqrt(mean(x^2) + eps) * w; RoPE on positions p with model/rope.ts's inv_freq table (theta^(-2i/D), or the
// rope_scaling rule: the same table the stage file gives the agent) and rotate_half (first half of each head paired
// with the second); q head h reads kv head floor(h / (H/KV)); scores * 1/sqrt(D); SwiGLU
// down(silu(gate(x)) * up(x)); LoRA y += scale * (x A^T) B^T with A [r, in], B [out, r] (docs/protocol.md names).
//
// Positions and the causal mask come from a LayerContext built from graph values (the first position and the key
// count), so the KV-cache graph (llama-kv-graph.ts) builds its context with an offset and passes its own
// attention to decoderLayer.
import type { ModelConfig } from '../model/hf-config.js';
import { ropeInvFreq } from '../model/rope.js';
import { ElemType, type GraphBuilder } from './graph-builder.js';

/** Weights by Hugging Face tensor name; LoRA adapters as `<module path>.lora_A` [r, in] and `.lora_B` [out, r]. */
export type WeightMap = ReadonlyMap<string, Float32Array>;

export interface LlamaGraphOptions {
  /** LoRA scale (alpha / r) applied to every adapter found in the weight map; adapters are used only when set. */
  loraScale?: number;
}

/** Per-graph values every layer shares: RoPE tables for the query positions and the additive causal mask. */
export interface LayerContext {
  /** (T, D) cos and sin of the query positions. */
  cos: string;
  sin: string;
  /** (G*T, Tk) additive mask, rows repeated per query head of a KV group (G = heads / kv heads). */
  mask: string;
}

/** Largest-magnitude negative f32: masked scores become this (finite, so a softmax row never divides 0 by 0). */
const MASKED_SCORE = -3.4028234663852886e38;

function weight(w: WeightMap, name: string, count: number): Float32Array {
  const t = w.get(name);
  if (!t) throw new Error(`ONNX Llama graph: weight "${name}" is missing`);
  if (t.length !== count) throw new Error(`ONNX Llama graph: weight "${name}" has ${t.length} values, expected ${count}`);
  return t;
}

/** (rows, cols) row-major -> (cols, rows), blocked so both sides stay in cache. */
export function transposeMatrix(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const BLOCK = 64;
  for (let r0 = 0; r0 < rows; r0 += BLOCK) {
    const r1 = Math.min(rows, r0 + BLOCK);
    for (let c0 = 0; c0 < cols; c0 += BLOCK) {
      const c1 = Math.min(cols, c0 + BLOCK);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = src[r * cols + c]!;
    }
  }
  return out;
}

/** Builds the shared layer context for query positions [start, start + T) against keys [0, keyCount). */
export function layerContext(g: GraphBuilder, c: ModelConfig, start: string, seqLen: string, keyCount: string): LayerContext {
  const D = c.headDim;
  const invFreq = Array.from(ropeInvFreq(c));
  const end = g.op('Add', [start, seqLen]);
  const pos = g.op('Cast', [g.op('Range', [start, end, g.constI64(1)])], { to: { i: ElemType.FLOAT } }); // (T)
  const freqs = g.op('Mul', [g.op('Unsqueeze', [pos, g.constI64([1])]), g.constF32(invFreq, [1, D / 2])]); // (T, D/2)
  const emb = g.op('Concat', [freqs, freqs], { axis: { i: -1 } }); // (T, D), as HF's cat((freqs, freqs), -1)
  const cos = g.op('Cos', [emb], {}, { name: 'rope_cos' });
  const sin = g.op('Sin', [emb], {}, { name: 'rope_sin' });
  // Query at position p may see keys 0..p: mask where key index > p.
  const rows = g.op('Unsqueeze', [g.op('Range', [start, end, g.constI64(1)]), g.constI64([1])]); // (T, 1)
  const cols = g.op('Unsqueeze', [g.op('Range', [g.constI64(0), keyCount, g.constI64(1)]), g.constI64([0])]); // (1, Tk)
  const masked = g.op('Greater', [cols, rows]); // (T, Tk)
  const mask = g.op('Where', [masked, g.constF32(MASKED_SCORE), g.constF32(0)]);
  const groups = c.numHeads / c.numKvHeads;
  return { cos, sin, mask: g.op('Tile', [mask, g.constI64([groups, 1])], {}, { name: 'causal_mask' }) };
}

/** Pow/ReduceMean/Add/Sqrt/Div/Mul: the pattern onnxruntime fuses into its SimplifiedLayerNormalization kernel. */
export function rmsNorm(g: GraphBuilder, x: string, w: WeightMap, name: string, c: ModelConfig): string {
  const gamma = g.initF32(name, [c.hiddenSize], weight(w, name, c.hiddenSize));
  const meanSq = g.op('ReduceMean', [g.op('Pow', [x, g.constF32(2)])], { axes: { ints: [-1] }, keepdims: { i: 1 } });
  const rms = g.op('Sqrt', [g.op('Add', [meanSq, g.constF32(c.rmsNormEps)])]);
  return g.op('Mul', [g.op('Div', [x, rms]), gamma]);
}

/**
 * y = x W^T (+ b) (+ scale * (x A^T) B^T) for the HF module at `path` (weight [out, in]). W is stored transposed,
 * [in, out], so a plain MatMul consumes it: the form PyTorch's exporter emits and onnxruntime prepacks.
 */
export function linear(g: GraphBuilder, x: string, w: WeightMap, path: string, inDim: number, outDim: number, opts: LlamaGraphOptions): string {
  const wt = g.initF32(`${path}.weight_t`, [inDim, outDim], transposeMatrix(weight(w, `${path}.weight`, outDim * inDim), outDim, inDim));
  let y = g.op('MatMul', [x, wt]);
  const bias = w.get(`${path}.bias`);
  if (bias) y = g.op('Add', [y, g.initF32(`${path}.bias`, [outDim], weight(w, `${path}.bias`, outDim))]);
  const a = w.get(`${path}.lora_A`);
  const b = w.get(`${path}.lora_B`);
  if (opts.loraScale !== undefined && (a || b)) {
    if (!a || !b) throw new Error(`ONNX Llama graph: LoRA of ${path} needs both lora_A and lora_B`);
    const rank = a.length / inDim;
    if (!Number.isInteger(rank) || b.length !== outDim * rank) {
      throw new Error(`ONNX Llama graph: LoRA of ${path}: A has ${a.length} values, B ${b.length}; expected [r, ${inDim}] and [${outDim}, r]`);
    }
    const at = g.initF32(`${path}.lora_A_t`, [inDim, rank], transposeMatrix(a, rank, inDim));
    const bt = g.initF32(`${path}.lora_B_t`, [rank, outDim], transposeMatrix(b, outDim, rank));
    const delta = g.op('MatMul', [g.op('MatMul', [x, at]), bt]);
    y = g.op('Add', [y, g.op('Mul', [delta, g.constF32(opts.loraScale)])]);
  }
  return y;
}

/** x * cos + rotate_half(x) * sin over the last axis (D); cos/sin (T, D) broadcast over leading axes. */
export function applyRope(g: GraphBuilder, x: string, ctx: LayerContext, D: number): string {
  const half = D / 2;
  const x1 = g.op('Slice', [x, g.constI64([0]), g.constI64([half]), g.constI64([-1])]);
  const x2 = g.op('Slice', [x, g.constI64([half]), g.constI64([D]), g.constI64([-1])]);
  const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: { i: -1 } });
  return g.op('Add', [g.op('Mul', [x, ctx.cos]), g.op('Mul', [rotated, ctx.sin])]);
}

/** Queries, keys and values of one layer, RoPE applied, laid out for GQA without copying keys (see attention()). */
export interface Qkv {
  /** (B, KV, G*T, D): the G query heads of a KV group stacked along the row axis. */
  q: string;
  /** (B, KV, T, D) */
  k: string;
  v: string;
}

export function projectQkv(g: GraphBuilder, c: ModelConfig, w: WeightMap, layer: number, x: string, ctx: LayerContext, opts: LlamaGraphOptions): Qkv {
  const p = `model.layers.${layer}.self_attn`;
  const H = c.numHeads;
  const KV = c.numKvHeads;
  const G = H / KV;
  const D = c.headDim;
  const q = linear(g, x, w, `${p}.q_proj`, c.hiddenSize, H * D, opts); // (B, T, H*D)
  const k = linear(g, x, w, `${p}.k_proj`, c.hiddenSize, KV * D, opts); // (B, T, KV*D)
  const v = linear(g, x, w, `${p}.v_proj`, c.hiddenSize, KV * D, opts);
  // Reshape's 0 copies the input's dimension: B and T stay symbolic.
  const q5 = g.op('Transpose', [g.op('Reshape', [q, g.constI64([0, 0, KV, G, D])])], { perm: { ints: [0, 2, 3, 1, 4] } }); // (B, KV, G, T, D)
  const qr = g.op('Reshape', [applyRope(g, q5, ctx, D), g.constI64([0, 0, -1, D])]); // (B, KV, G*T, D)
  const k4 = g.op('Transpose', [g.op('Reshape', [k, g.constI64([0, 0, KV, D])])], { perm: { ints: [0, 2, 1, 3] } }); // (B, KV, T, D)
  const v4 = g.op('Transpose', [g.op('Reshape', [v, g.constI64([0, 0, KV, D])])], { perm: { ints: [0, 2, 1, 3] } }); // (B, KV, T, D)
  return { q: qr, k: applyRope(g, k4, ctx, D), v: v4 };
}

/** Attention output (B, KV, G*T, D) back to (B, T, H*D), then o_proj. */
export function outputProjection(g: GraphBuilder, c: ModelConfig, w: WeightMap, layer: number, ctxOut: string, opts: LlamaGraphOptions): string {
  const H = c.numHeads;
  const G = H / c.numKvHeads;
  const D = c.headDim;
  const split = g.op('Reshape', [ctxOut, g.constI64([0, 0, G, -1, D])]); // (B, KV, G, T, D)
  const merged = g.op('Reshape', [g.op('Transpose', [split], { perm: { ints: [0, 3, 1, 2, 4] } }), g.constI64([0, 0, H * D])]); // (B, T, H*D)
  return linear(g, merged, w, `model.layers.${layer}.self_attn.o_proj`, H * D, c.hiddenSize, opts);
}

/**
 * Self-attention of layer `layer` on the normed input x (B, T, C) -> (B, T, C). GQA without copying keys: the G
 * query heads of a KV group are stacked along the row axis, (B, KV, G*T, D) x (B, KV, D, T) in one batched MatMul.
 */
export function attention(g: GraphBuilder, c: ModelConfig, w: WeightMap, layer: number, x: string, ctx: LayerContext, opts: LlamaGraphOptions): string {
  const { q, k, v } = projectQkv(g, c, w, layer, x, ctx, opts);
  const kt = g.op('Transpose', [k], { perm: { ints: [0, 1, 3, 2] } }); // (B, KV, D, T)
  const scores = g.op('Mul', [g.op('MatMul', [q, kt]), g.constF32(1 / Math.sqrt(c.headDim))]); // (B, KV, G*T, Tk)
  const probs = g.op('Softmax', [g.op('Add', [scores, ctx.mask])], { axis: { i: -1 } });
  return outputProjection(g, c, w, layer, g.op('MatMul', [probs, v]), opts);
}

/** down(silu(gate(x)) * up(x)), silu(z) = z * sigmoid(z). */
export function mlp(g: GraphBuilder, c: ModelConfig, w: WeightMap, layer: number, x: string, opts: LlamaGraphOptions): string {
  const p = `model.layers.${layer}.mlp`;
  const gate = linear(g, x, w, `${p}.gate_proj`, c.hiddenSize, c.intermediateSize, opts);
  const up = linear(g, x, w, `${p}.up_proj`, c.hiddenSize, c.intermediateSize, opts);
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  return linear(g, act, w, `${p}.down_proj`, c.intermediateSize, c.hiddenSize, opts);
}

/** Self-attention of one layer on the normed input (B, T, C) -> (B, T, C): attention() or the KV-cache variant. */
export type AttentionFn = typeof attention;

/** One pre-norm decoder layer: h + attn(norm(h)), then + mlp(norm(.)). (B, T, C) -> (B, T, C). */
export function decoderLayer(g: GraphBuilder, c: ModelConfig, w: WeightMap, layer: number, hidden: string, ctx: LayerContext, opts: LlamaGraphOptions, attend: AttentionFn = attention): string {
  const p = `model.layers.${layer}`;
  const attnOut = attend(g, c, w, layer, rmsNorm(g, hidden, w, `${p}.input_layernorm.weight`, c), ctx, opts);
  const h = g.op('Add', [hidden, attnOut]);
  return g.op('Add', [h, mlp(g, c, w, layer, rmsNorm(g, h, w, `${p}.post_attention_layernorm.weight`, c), opts)]);
}
