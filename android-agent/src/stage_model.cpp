// Forward/backward of one pipeline stage on the engine's backends: embedding, the decoder layers (layer.h, each
// possibly split between the primary and the secondary backend), final norm, LM head and cross-entropy.
// Attention keeps only its log-sum-exp per row; backward rebuilds the probabilities (flash-attention style), so
// the (B,NH,T,T) matrix never exists. With recompute on, only each layer's input is kept and the layer is run
// forward again in backward.
#include "stage_model.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "confidant/half.h"
#include "confidant/ref_ops.h"

namespace confidant::agent {

StageModel::StageModel(Engine& engine, std::unique_ptr<StageFile> file, LoraSet lora)
    : engine_(engine), file_(std::move(file)), lora_(std::move(lora)) {
  const StageConfig& c = config();
  if (c.rope_inv_freq()) {
    const StageTensor& t = *file_->find(kRopeInvFreqTensor);  // present, f32 and [head_dim/2]: checked by StageFile
    inv_freq_.resize(t.dims[0]);
    std::memcpy(inv_freq_.data(), t.data, inv_freq_.size() * sizeof(float));
  } else {
    inv_freq_ = ref::rope_default_inv_freq(static_cast<int>(c.head_dim), c.rope_theta);
  }
  if (c.has_embedding()) embed_ = matrix_weight("model.embed_tokens.weight");
  if (c.has_head()) {
    final_norm_ = vector_weight("model.norm.weight");
    head_ = matrix_weight(c.tied_embeddings() ? "model.embed_tokens.weight" : "lm_head.weight");
  }
  for (uint32_t i = c.layer_start; i < c.layer_end; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights w;
    w.ln1 = vector_weight(p + "input_layernorm.weight");
    w.wq = matrix_weight(p + "self_attn.q_proj.weight");
    w.wk = matrix_weight(p + "self_attn.k_proj.weight");
    w.wv = matrix_weight(p + "self_attn.v_proj.weight");
    w.wo = matrix_weight(p + "self_attn.o_proj.weight");
    if (c.attention_bias()) {
      w.bq = vector_weight(p + "self_attn.q_proj.bias");
      w.bk = vector_weight(p + "self_attn.k_proj.bias");
      w.bv = vector_weight(p + "self_attn.v_proj.bias");
    }
    w.ln2 = vector_weight(p + "post_attention_layernorm.weight");
    w.wg = matrix_weight(p + "mlp.gate_proj.weight");
    w.wu = matrix_weight(p + "mlp.up_proj.weight");
    w.wd = matrix_weight(p + "mlp.down_proj.weight");
    layers_.push_back(w);
  }
  split_.assign(layers_.size(), LayerSplit{});
}

namespace {

const StageTensor& tensor_or_throw(const StageFile& f, const std::string& name) {
  const StageTensor* t = f.find(name);
  if (!t) throw StageFileError("stage file '" + f.path() + "': tensor '" + name + "' is missing");
  return *t;
}

}  // namespace

// Norm weights and biases: f32 as stored, or a small f32 copy of an f16 tensor.
const float* StageModel::vector_weight(const std::string& name) {
  const StageTensor& t = tensor_or_throw(*file_, name);
  if (t.dtype == StageDType::F32) return reinterpret_cast<const float*>(t.data);
  if (t.dtype != StageDType::F16) {
    throw StageFileError("stage file '" + file_->path() + "': tensor '" + name + "' must be f32 or f16");
  }
  const size_t n = static_cast<size_t>(t.nbytes / 2);
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    w[i] = half_to_float(h);
  }
  converted_bytes_ += n * sizeof(float);
  converted_.push_back(std::move(w));
  return converted_.back().data();
}

// Matrices stay in their stored format inside the mapping; the backends read them directly.
WeightView StageModel::matrix_weight(const std::string& name) {
  const StageTensor& t = tensor_or_throw(*file_, name);
  return WeightView::packed(static_cast<WDType>(t.dtype), t.data, static_cast<int>(t.dims[0]),
                            static_cast<int>(t.dims[1]));
}

LayerCtx StageModel::layer_ctx(int li, int B, int T, const ZoPerturbation* zo) const {
  const StageConfig& c = config();
  LayerCtx x;
  x.w = &layers_[li];
  x.layer = c.layer_start + li;
  x.B = B;
  x.T = T;
  x.N = B * T;
  x.C = c.hidden_size;
  x.I = c.intermediate_size;
  x.NH = c.num_heads;
  x.NKV = c.num_kv_heads;
  x.HD = c.head_dim;
  x.eps = c.rms_norm_eps;
  x.inv_freq = inv_freq_.data();
  for (int m = 0; m < kNumLoraModules; ++m) x.lora[m] = lora_.find(x.layer, static_cast<LoraModule>(m));
  x.R = lora_.rank();
  x.scale = lora_.scale();
  x.train_a = lora_.train_a();
  x.zo = zo;
  x.secondary_time = &engine_.secondary_time();
  return x;
}

std::array<LoraAdapter*, kNumLoraModules> StageModel::layer_grads(int li) {
  std::array<LoraAdapter*, kNumLoraModules> g{};
  for (int m = 0; m < kNumLoraModules; ++m) g[m] = lora_.find(config().layer_start + li, static_cast<LoraModule>(m));
  return g;
}

void StageModel::set_split(const std::vector<LayerSplit>& splits) {
  const StageConfig& c = config();
  if (splits.size() != layers_.size()) {
    throw std::invalid_argument("SET_SPLIT needs one entry per layer of the stage (" + std::to_string(layers_.size()) +
                                "), got " + std::to_string(splits.size()));
  }
  for (size_t li = 0; li < splits.size(); ++li) {
    const LayerSplit& s = splits[li];
    const std::string where = "layer " + std::to_string(c.layer_start + li) + ": ";
    if ((s.gpu_kv_groups || s.gpu_mlp_cols) && !engine_.secondary()) {
      throw std::invalid_argument(where + "cannot give work to OpenCL: " + engine_.secondary_unavailable_reason());
    }
    if (s.gpu_kv_groups > c.num_kv_heads) {
      throw std::invalid_argument(where + "gpu_kv_groups " + std::to_string(s.gpu_kv_groups) + " > " +
                                  std::to_string(c.num_kv_heads) + " KV groups");
    }
    if (s.gpu_mlp_cols > c.intermediate_size) {
      throw std::invalid_argument(where + "gpu_mlp_cols " + std::to_string(s.gpu_mlp_cols) + " > intermediate size " +
                                  std::to_string(c.intermediate_size));
    }
    // The column slices of o_proj and down_proj must be views the weight format can take (grouped formats slice
    // at multiples of 32 columns); slice_cols says why not.
    const LayerWeights& w = layers_[li];
    const int qcols = static_cast<int>(s.gpu_kv_groups * (c.num_heads / c.num_kv_heads) * c.head_dim);
    try {
      w.wo.slice_cols(0, qcols);
      w.wd.slice_cols(0, static_cast<int>(s.gpu_mlp_cols));
    } catch (const std::exception& e) {
      throw std::invalid_argument(where + e.what());
    }
  }
  split_ = splits;
  drop_spare_activations();  // laid out for the old split
}

// ---- memory accounting ----

uint64_t StageModel::activation_bytes(int B, int T) const {
  const uint64_t N = uint64_t(B) * T, C = config().hidden_size;
  uint64_t floats = N * C * num_local_layers();  // every layer's input
  if (!recompute_) {
    for (int li = 0; li < num_local_layers(); ++li) floats += alloc_layer_acts(nullptr, layer_ctx(li, B, T, nullptr), split_[li]);
  }
  if (last()) floats += N * (2 * C + 1) + N;  // final_in, xf, rstdf, mask
  return floats * sizeof(float) + (last() ? N * sizeof(int32_t) : 0);
}

uint64_t StageModel::forward_scratch_bytes(int B, int T, bool keep) const {
  const StageConfig& c = config();
  const uint64_t N = uint64_t(B) * T, C = c.hidden_size, V = c.vocab_size;
  uint64_t floats = 3 * N * C;  // cur + the two shares' partial outputs
  if ((!keep || recompute_) && num_local_layers() > 0) {
    uint64_t widest = 0;
    for (int li = 0; li < num_local_layers(); ++li) {
      widest = std::max<uint64_t>(widest, alloc_layer_acts(nullptr, layer_ctx(li, B, T, nullptr), split_[li]));
    }
    floats += widest;  // one reused layer
  }
  if (last()) floats += N * V + N + (keep ? 0 : N * (2 * C + 1));  // logits, losses, final norm
  floats += last() ? N * V : N * C;                                 // the reply's copy
  return floats * sizeof(float);
}

uint64_t StageModel::backward_scratch_bytes(int B, int T) const {
  const StageConfig& c = config();
  const uint64_t N = uint64_t(B) * T, C = c.hidden_size, V = c.vocab_size, I = c.intermediate_size,
                 Q = c.q_dim(), KV = c.kv_dim();
  uint64_t floats = N * (6 * C + 3 * I + 4 * Q + 4 * KV);  // dcur, dh, dxn x2, dxa x2; MLP and attention grads
  if (recompute_ && num_local_layers() > 0) floats += alloc_layer_acts(nullptr, layer_ctx(0, B, T, nullptr), split_[0]);
  if (last()) floats += 2 * N * V + N * C;  // logits, dlogits, dxf
  floats += N * C;                          // the reply's copy
  return floats * sizeof(float);
}

uint64_t StageModel::spare_activation_bytes() const {
  uint64_t floats = 0;
  for (const LayerActs& la : spare_acts_) floats += layer_acts_floats(la);
  return floats * sizeof(float);
}

uint64_t StageModel::kept_activation_bytes() const {
  uint64_t n = 0;
  for (const auto& kv : acts_) n += activation_bytes(kv.second.B, kv.second.T);
  return n;
}

bool StageModel::activations_have_targets(uint32_t micro_id) const {
  auto it = acts_.find(micro_id);
  return it != acts_.end() && it->second.has_targets;
}

void StageModel::activation_shape(uint32_t micro_id, int* B, int* T) const {
  auto it = acts_.find(micro_id);
  *B = it == acts_.end() ? 0 : it->second.B;
  *T = it == acts_.end() ? 0 : it->second.T;
}

// ---- stage forward / backward ----

void StageModel::run_layer_forward(int li, float* cur, LayerActs& la, int B, int T, const ZoPerturbation* zo) {
  const LayerCtx ctx = layer_ctx(li, B, T, zo);
  alloc_layer_acts(&la, ctx, split_[li]);
  layer_forward(ctx, engine_.primary(), engine_.secondary(), cur, la);
}

ForwardResult StageModel::forward(const ForwardArgs& a) {
  const StageConfig& c = config();
  const int B = a.B, T = a.T, N = B * T, C = c.hidden_size, V = c.vocab_size;
  const size_t nC = size_t(N) * C;
  if (c.sliding_window != 0 && T > static_cast<int>(c.sliding_window)) {
    throw std::invalid_argument("sequence length " + std::to_string(T) + " exceeds the model's sliding_window " +
                                std::to_string(c.sliding_window) +
                                ": this engine computes full attention, which equals the model's windowed attention "
                                "only up to that length; use sequences of at most " +
                                std::to_string(c.sliding_window) + " tokens");
  }
  if (a.zo && (a.keep || a.zo->queries == 0 || B % (2 * static_cast<int>(a.zo->queries)) != 0)) {
    throw std::invalid_argument("a P-RGE forward keeps no activations and needs a batch of 2*queries copies");
  }
  Backend& be = engine_.primary();
  ForwardResult res;
  if (a.keep) acts_.erase(a.micro_id);  // a repeated micro_id replaces its old activations
  MicroActs ma;
  ma.B = B;
  ma.T = T;

  std::vector<float> cur(nC);
  if (first()) {
    be.embedding_forward(cur.data(), a.tokens, embed_, N, C);
  } else {
    std::copy(a.hidden, a.hidden + nC, cur.begin());
  }

  const bool keep_all = a.keep && !recompute_;
  if (a.keep) {
    scratch_acts_ = LayerActs();
    // Same shape (and split: set_split drops the spare): alloc_layer_acts finds every buffer sized already.
    if (keep_all && spare_B_ == B && spare_T_ == T && int(spare_acts_.size()) == num_local_layers()) {
      ma.layers = std::move(spare_acts_);
    } else {
      ma.layers.resize(num_local_layers());
    }
  }
  drop_spare_activations();  // taken, or not of use to a forward that keeps nothing
  LayerActs local_scratch;  // recompute: the kept inputs only, the rest per call as before
  LayerActs& scratch = a.keep ? local_scratch : scratch_acts_;
  for (int li = 0; li < num_local_layers(); ++li) {
    LayerActs& la = keep_all ? ma.layers[li] : scratch;
    if (a.keep) ma.layers[li].x.assign(cur.begin(), cur.end());
    run_layer_forward(li, cur.data(), la, B, T, a.zo);
  }

  if (!last()) {
    res.hidden = std::move(cur);
  } else {
    ma.final_in = cur;
    ma.xf.resize(nC);
    ma.rstdf.resize(N);
    be.rmsnorm_forward(ma.xf.data(), ma.rstdf.data(), cur.data(), final_norm_, N, C, c.rms_norm_eps);
    std::vector<float> logits(size_t(N) * V);
    be.linear_forward(logits.data(), ma.xf.data(), head_, nullptr, N, C, V);
    if (a.targets) {
      std::vector<float> losses(N);
      res.loss_sum = be.cross_entropy_forward(losses.data(), logits.data(), a.targets, a.mask, N, V);
      double w = 0;
      for (int i = 0; i < N; ++i) w += a.mask[i];
      res.weight_sum = w;
      if (a.zo) {  // per-copy sums: copy j is rows [j*rows_per_copy, (j+1)*rows_per_copy)
        const int copies = 2 * static_cast<int>(a.zo->queries), rows_per_copy = N / copies;
        res.copy_loss_sums.assign(copies, 0.0);
        res.copy_weight_sums.assign(copies, 0.0);
        for (int i = 0; i < N; ++i) {
          res.copy_loss_sums[i / rows_per_copy] += losses[i];
          res.copy_weight_sums[i / rows_per_copy] += a.mask[i];
        }
      }
      ma.has_targets = true;
      ma.targets.assign(a.targets, a.targets + N);
      ma.mask.assign(a.mask, a.mask + N);
    }
    if (a.want_logits) res.logits = std::move(logits);
  }
  if (a.keep) acts_[a.micro_id] = std::move(ma);
  return res;
}

std::vector<float> StageModel::backward(uint32_t micro_id, float loss_scale, const float* grad_output) {
  auto it = acts_.find(micro_id);
  if (it == acts_.end()) throw std::logic_error("no activations for micro_id " + std::to_string(micro_id));
  MicroActs ma = std::move(it->second);
  acts_.erase(it);
  const StageConfig& c = config();
  const int B = ma.B, T = ma.T, N = B * T, C = c.hidden_size, V = c.vocab_size;
  const size_t nC = size_t(N) * C;
  Backend& be = engine_.primary();

  std::vector<float> dcur(nC, 0.0f);
  if (last()) {
    // Logits are recomputed rather than kept: (N, vocab) is the largest buffer of the last stage.
    std::vector<float> logits(size_t(N) * V), dlogits(size_t(N) * V, 0.0f), dxf(nC, 0.0f);
    be.linear_forward(logits.data(), ma.xf.data(), head_, nullptr, N, C, V);
    be.cross_entropy_backward(dlogits.data(), logits.data(), ma.targets.data(), ma.mask.data(), loss_scale, N, V);
    logits.clear();
    logits.shrink_to_fit();
    be.linear_backward_input(dxf.data(), dlogits.data(), head_, N, C, V);
    be.rmsnorm_backward(dcur.data(), nullptr, dxf.data(), ma.final_in.data(), final_norm_, ma.rstdf.data(), N, C);
  } else {
    std::copy(grad_output, grad_output + nC, dcur.begin());
  }
  for (int li = num_local_layers() - 1; li >= 0; --li) {
    LayerActs& la = ma.layers[li];
    if (recompute_) {  // rebuild this layer's activations from its kept input
      std::vector<float> out(la.x);
      run_layer_forward(li, out.data(), la, B, T, nullptr);
    }
    layer_backward(layer_ctx(li, B, T, nullptr), be, engine_.secondary(), layer_grads(li), dcur.data(), la);
    if (recompute_) la = LayerActs();  // free as we go: only the kept input is left
  }
  if (!recompute_) {  // kept whole for the next forward (the Session's budget already counted them resident)
    spare_acts_ = std::move(ma.layers);
    spare_B_ = B;
    spare_T_ = T;
  }
  if (first()) return {};
  return dcur;
}

}  // namespace confidant::agent
