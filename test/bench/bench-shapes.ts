// The model shapes npm run bench measures, as Hugging Face config.json objects: a TinyLlama-1.1B decoder layer and
// a small whole model. Shapes only; the weights are random (random-model.ts).

export interface BenchShape {
  /** Short key used in the JSON report. */
  key: string;
  description: string;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  numLayers: number;
  tieWordEmbeddings: boolean;
}

/**
 * TinyLlama-1.1B's layer (hidden 2048, 32 heads, 4 KV heads, head_dim 64, intermediate 5632). Only its one layer
 * is benchmarked, so the model has 1 layer and a 512-token vocabulary (the embedding is never used: the stage is a
 * middle stage without embedding or head) to keep the random checkpoint at ~180 MB.
 */
export const TINYLLAMA_LAYER: BenchShape = {
  key: 'tinyllama',
  description: 'TinyLlama-1.1B layer: hidden 2048, 32/4 heads, head_dim 64, intermediate 5632',
  hiddenSize: 2048, intermediateSize: 5632, numHeads: 32, numKvHeads: 4, headDim: 64,
  vocabSize: 512, numLayers: 1, tieWordEmbeddings: true,
};

/** A small whole model for prefill: hidden 512, 8/2 heads, intermediate 1408, vocab 32000, 4 layers, untied head. */
export const SMALL_MODEL: BenchShape = {
  key: 'small',
  description: 'small model: hidden 512, 8/2 heads, head_dim 64, intermediate 1408, vocab 32000, 4 layers',
  hiddenSize: 512, intermediateSize: 1408, numHeads: 8, numKvHeads: 2, headDim: 64,
  vocabSize: 32000, numLayers: 4, tieWordEmbeddings: false,
};

export function hfConfigJson(s: BenchShape): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hiddenSize,
    intermediate_size: s.intermediateSize,
    num_hidden_layers: s.numLayers,
    num_attention_heads: s.numHeads,
    num_key_value_heads: s.numKvHeads,
    head_dim: s.headDim,
    vocab_size: s.vocabSize,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: s.tieWordEmbeddings,
    attention_bias: false,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
}

/**
 * The P-RGE pipeline benches' model (zo-pipeline.ts, zo-virtual-phones.ts): TinyLlama-like proportions at half width,
 * ~11 M weights per layer, so one 512-row micro-batch costs ~12 GFLOP per layer while its relayed hidden state is
 * only 2 MiB (compute dominates the relay).
 */
export const ZO_PIPELINE: BenchShape = {
  key: 'zo-pipeline', description: 'hidden 1024, 16/4 heads, head_dim 64, intermediate 2816, vocab 512, 4 layers',
  hiddenSize: 1024, intermediateSize: 2816, numHeads: 16, numKvHeads: 4, headDim: 64, vocabSize: 512, numLayers: 4, tieWordEmbeddings: true,
};
