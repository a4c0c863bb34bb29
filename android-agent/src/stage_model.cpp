// Forward/backward of one pipeline stage with the reference kernels (kernels/include/confidant/ref_ops.h).
// Attention probabilities are recomputed in backward instead of kept: they are (B,NH,T,T) per layer, the largest
// activation by far at real sequence lengths, and cost one attention forward to rebuild.
#include "stage_model.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "confidant/ref_ops.h"
#include "half.h"

namespace confidant::agent {

namespace ref = confidant::ref;

namespace {

void zero(std::vector<float>& v, size_t n) { v.assign(n, 0.0f); }

}  // namespace

StageModel::StageModel(std::unique_ptr<StageFile> file, LoraSet lora) : file_(std::move(file)), lora_(std::move(lora)) {
  const StageConfig& c = config();
  if (c.has_embedding()) embed_ = weight("model.embed_tokens.weight");
  if (c.has_head()) {
    final_norm_ = weight("model.norm.weight");
    head_ = weight(c.tied_embeddings() ? "model.embed_tokens.weight" : "lm_head.weight");
  }
  for (uint32_t i = c.layer_start; i < c.layer_end; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights w{};
    w.ln1 = weight(p + "input_layernorm.weight");
    w.wq = weight(p + "self_attn.q_proj.weight");
    w.wk = weight(p + "self_attn.k_proj.weight");
    w.wv = weight(p + "self_attn.v_proj.weight");
    w.wo = weight(p + "self_attn.o_proj.weight");
    if (c.attention_bias()) {
      w.bq = weight(p + "self_attn.q_proj.bias");
      w.bk = weight(p + "self_attn.k_proj.bias");
      w.bv = weight(p + "self_attn.v_proj.bias");
    }
    w.ln2 = weight(p + "post_attention_layernorm.weight");
    w.wg = weight(p + "mlp.gate_proj.weight");
    w.wu = weight(p + "mlp.up_proj.weight");
    w.wd = weight(p + "mlp.down_proj.weight");
    layers_.push_back(w);
  }
}

const float* StageModel::weight(const std::string& name) {
  const StageTensor* t = file_->find(name);
  if (!t) throw StageFileError("stage file '" + file_->path() + "': tensor '" + name + "' is missing");
  if (t->dtype == StageDType::F32) return reinterpret_cast<const float*>(t->data);
  const size_t n = static_cast<size_t>(t->nbytes / 2);
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, t->data + 2 * i, 2);
    w[i] = half_to_float(h);
  }
  converted_bytes_ += n * sizeof(float);
  converted_.push_back(std::move(w));
  return converted_.back().data();
}

// ---- memory accounting ----

uint64_t StageModel::layer_act_floats_per_row() const {
  const StageConfig& c = config();
  const uint64_t C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  uint64_t lora_cols = 0;
  for (int m = 0; m < kNumLoraModules; ++m) {
    if (lora_.find(c.layer_start, static_cast<LoraModule>(m))) lora_cols += lora_.rank();
  }
  return 4 * C + 2 + 2 * Q + 2 * KV + 3 * I + lora_cols;
}

uint64_t StageModel::activation_bytes(int B, int T) const {
  const uint64_t N = uint64_t(B) * T, C = config().hidden_size;
  uint64_t floats = N * layer_act_floats_per_row() * num_local_layers();
  if (last()) floats += N * (2 * C + 1) + N;  // final_in, xf, rstdf, mask
  return floats * sizeof(float) + (last() ? N * sizeof(int32_t) : 0);
}

uint64_t StageModel::forward_scratch_bytes(int B, int T, bool keep) const {
  const StageConfig& c = config();
  const uint64_t N = uint64_t(B) * T, C = c.hidden_size, V = c.vocab_size;
  uint64_t floats = 2 * N * C + uint64_t(B) * c.num_heads * T * T;  // cur, tmp, att
  if (!keep && num_local_layers() > 0) floats += N * layer_act_floats_per_row();  // one reused layer
  if (last()) floats += N * V + N + (keep ? 0 : N * (2 * C + 1));                 // logits, losses, final norm
  floats += last() ? N * V : N * C;  // the reply's copy
  return floats * sizeof(float);
}

uint64_t StageModel::backward_scratch_bytes(int B, int T) const {
  const StageConfig& c = config();
  const uint64_t N = uint64_t(B) * T, C = c.hidden_size, V = c.vocab_size, I = c.intermediate_size,
                 Q = c.q_dim(), KV = c.kv_dim();
  uint64_t floats = N * (4 * C + 3 * I + 4 * Q + 4 * KV) + uint64_t(B) * c.num_heads * T * T;
  if (last()) floats += 2 * N * V + N * C;  // logits, dlogits, dxf
  floats += N * C;                          // the reply's copy
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

// ---- building blocks ----

void StageModel::alloc_layer(LayerActs& la, int N, bool keep) const {
  const StageConfig& c = config();
  const size_t n = size_t(N), C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  la.x.resize(keep ? n * C : 0);
  la.xn1.resize(n * C);
  la.rstd1.resize(n);
  la.q.resize(n * Q);
  la.k.resize(n * KV);
  la.v.resize(n * KV);
  la.y.resize(n * Q);
  la.h.resize(n * C);
  la.xn2.resize(n * C);
  la.rstd2.resize(n);
  la.g.resize(n * I);
  la.u.resize(n * I);
  la.s.resize(n * I);
  for (int m = 0; m < kNumLoraModules; ++m) {
    const bool adapted = lora_.find(c.layer_start, static_cast<LoraModule>(m)) != nullptr;
    la.xa[m].resize(adapted ? n * lora_.rank() : 0);
  }
}

// out (N,OC) = x (N,C) @ W^T + bias, plus the LoRA branch when this (layer, module) is adapted.
void StageModel::project(float* out, float* xa, const float* x, const float* W, const float* bias, int N, int C, int OC,
                         uint32_t layer, LoraModule m) const {
  ref::linear_forward(out, x, W, bias, N, C, OC);
  if (const LoraAdapter* a = lora_.find(layer, m)) {
    ref::lora_forward(out, xa, x, a->A.data(), a->B.data(), N, C, lora_.rank(), OC, lora_.scale());
  }
}

// dx (N,C) += dout @ W (+ LoRA input gradient); LoRA parameter gradients accumulate.
void StageModel::project_backward(float* dx, const float* dout, const float* x, const float* xa, const float* W, int N,
                                  int C, int OC, uint32_t layer, LoraModule m) {
  ref::linear_backward_input(dx, dout, W, N, C, OC);
  if (LoraAdapter* a = lora_.find(layer, m)) {
    ref::lora_backward(dx, lora_.train_a() ? a->dA.data() : nullptr, a->dB.data(), dout, x, xa, a->A.data(),
                       a->B.data(), N, C, lora_.rank(), OC, lora_.scale());
  }
}

// cur (N,C): the residual stream, layer input on entry, layer output on return.
void StageModel::layer_forward(int li, float* cur, LayerActs& la, std::vector<float>& tmp, std::vector<float>& att,
                               int B, int T, bool keep) {
  const StageConfig& c = config();
  const LayerWeights& w = layers_[li];
  const uint32_t L = c.layer_start + li;
  const int N = B * T, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  const int NH = c.num_heads, NKV = c.num_kv_heads, HD = c.head_dim;
  if (keep) std::copy(cur, cur + size_t(N) * C, la.x.begin());

  ref::rmsnorm_forward(la.xn1.data(), la.rstd1.data(), cur, w.ln1, N, C, c.rms_norm_eps);
  project(la.q.data(), la.xa[kQ].data(), la.xn1.data(), w.wq, w.bq, N, C, Q, L, kQ);
  project(la.k.data(), la.xa[kK].data(), la.xn1.data(), w.wk, w.bk, N, C, KV, L, kK);
  project(la.v.data(), la.xa[kV].data(), la.xn1.data(), w.wv, w.bv, N, C, KV, L, kV);
  ref::rope_forward(la.q.data(), la.q.data(), B, T, NH, HD, 0, c.rope_theta);
  ref::rope_forward(la.k.data(), la.k.data(), B, T, NKV, HD, 0, c.rope_theta);
  ref::attention_forward(la.y.data(), att.data(), la.q.data(), la.k.data(), la.v.data(), B, T, NH, NKV, HD);
  project(tmp.data(), la.xa[kO].data(), la.y.data(), w.wo, nullptr, N, Q, C, L, kO);
  ref::residual_forward(la.h.data(), cur, tmp.data(), size_t(N) * C);

  ref::rmsnorm_forward(la.xn2.data(), la.rstd2.data(), la.h.data(), w.ln2, N, C, c.rms_norm_eps);
  project(la.g.data(), la.xa[kGate].data(), la.xn2.data(), w.wg, nullptr, N, C, I, L, kGate);
  project(la.u.data(), la.xa[kUp].data(), la.xn2.data(), w.wu, nullptr, N, C, I, L, kUp);
  ref::swiglu_forward(la.s.data(), la.g.data(), la.u.data(), N, I);
  project(tmp.data(), la.xa[kDown].data(), la.s.data(), w.wd, nullptr, N, I, C, L, kDown);
  ref::residual_forward(cur, la.h.data(), tmp.data(), size_t(N) * C);
}

// dcur (N,C): gradient w.r.t. the layer output on entry, w.r.t. the layer input on return.
void StageModel::layer_backward(int li, float* dcur, const LayerActs& la, int B, int T) {
  const StageConfig& c = config();
  const LayerWeights& w = layers_[li];
  const uint32_t L = c.layer_start + li;
  const int N = B * T, C = c.hidden_size, I = c.intermediate_size, Q = c.q_dim(), KV = c.kv_dim();
  const int NH = c.num_heads, NKV = c.num_kv_heads, HD = c.head_dim;
  const size_t nC = size_t(N) * C, nI = size_t(N) * I, nQ = size_t(N) * Q, nKV = size_t(N) * KV;
  std::vector<float> dh(dcur, dcur + nC), ds, dg, du, dxn, dy, y2, att, dq, dk, dv, dq0, dk0;

  // out = h + down(silu(gate(xn2)) * up(xn2)), xn2 = rms2(h)
  zero(ds, nI);
  project_backward(ds.data(), dcur, la.s.data(), la.xa[kDown].data(), w.wd, N, I, C, L, kDown);
  zero(dg, nI);
  zero(du, nI);
  ref::swiglu_backward(dg.data(), du.data(), ds.data(), la.g.data(), la.u.data(), N, I);
  zero(dxn, nC);
  project_backward(dxn.data(), dg.data(), la.xn2.data(), la.xa[kGate].data(), w.wg, N, C, I, L, kGate);
  project_backward(dxn.data(), du.data(), la.xn2.data(), la.xa[kUp].data(), w.wu, N, C, I, L, kUp);
  ref::rmsnorm_backward(dh.data(), nullptr, dxn.data(), la.h.data(), w.ln2, la.rstd2.data(), N, C);

  // h = x + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))), xn1 = rms1(x)
  std::copy(dh.begin(), dh.end(), dcur);
  zero(dy, nQ);
  project_backward(dy.data(), dh.data(), la.y.data(), la.xa[kO].data(), w.wo, N, Q, C, L, kO);
  zero(y2, nQ);
  zero(att, size_t(B) * NH * T * T);
  ref::attention_forward(y2.data(), att.data(), la.q.data(), la.k.data(), la.v.data(), B, T, NH, NKV, HD);
  zero(dq, nQ);
  zero(dk, nKV);
  zero(dv, nKV);
  ref::attention_backward(dq.data(), dk.data(), dv.data(), dy.data(), att.data(), la.q.data(), la.k.data(),
                          la.v.data(), B, T, NH, NKV, HD);
  zero(dq0, nQ);
  zero(dk0, nKV);
  ref::rope_backward(dq0.data(), dq.data(), B, T, NH, HD, 0, c.rope_theta);
  ref::rope_backward(dk0.data(), dk.data(), B, T, NKV, HD, 0, c.rope_theta);
  zero(dxn, nC);
  project_backward(dxn.data(), dq0.data(), la.xn1.data(), la.xa[kQ].data(), w.wq, N, C, Q, L, kQ);
  project_backward(dxn.data(), dk0.data(), la.xn1.data(), la.xa[kK].data(), w.wk, N, C, KV, L, kK);
  project_backward(dxn.data(), dv.data(), la.xn1.data(), la.xa[kV].data(), w.wv, N, C, KV, L, kV);
  ref::rmsnorm_backward(dcur, nullptr, dxn.data(), la.x.data(), w.ln1, la.rstd1.data(), N, C);
}

// ---- stage forward / backward ----

ForwardResult StageModel::forward(const ForwardArgs& a) {
  const StageConfig& c = config();
  const int B = a.B, T = a.T, N = B * T, C = c.hidden_size, V = c.vocab_size;
  const size_t nC = size_t(N) * C;
  ForwardResult res;
  if (a.keep) acts_.erase(a.micro_id);  // a repeated micro_id replaces its old activations
  MicroActs ma;
  ma.B = B;
  ma.T = T;

  std::vector<float> cur(nC), tmp(nC), att(size_t(B) * c.num_heads * T * T);
  if (first()) {
    ref::embedding_forward(cur.data(), a.tokens, embed_, N, C);
  } else {
    std::copy(a.hidden, a.hidden + nC, cur.begin());
  }

  LayerActs scratch;
  if (!a.keep && num_local_layers() > 0) alloc_layer(scratch, N, false);
  if (a.keep) ma.layers.resize(num_local_layers());
  for (int li = 0; li < num_local_layers(); ++li) {
    LayerActs& la = a.keep ? ma.layers[li] : scratch;
    if (a.keep) alloc_layer(la, N, true);
    layer_forward(li, cur.data(), la, tmp, att, B, T, a.keep);
  }

  if (!last()) {
    res.hidden = std::move(cur);
  } else {
    ma.final_in = cur;
    ma.xf.resize(nC);
    ma.rstdf.resize(N);
    ref::rmsnorm_forward(ma.xf.data(), ma.rstdf.data(), cur.data(), final_norm_, N, C, c.rms_norm_eps);
    std::vector<float> logits(size_t(N) * V);
    ref::linear_forward(logits.data(), ma.xf.data(), head_, nullptr, N, C, V);
    if (a.targets) {
      std::vector<float> losses(N);
      res.loss_sum = ref::cross_entropy_forward(losses.data(), logits.data(), a.targets, a.mask, N, V);
      double w = 0;
      for (int i = 0; i < N; ++i) w += a.mask[i];
      res.weight_sum = w;
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

  std::vector<float> dcur(nC, 0.0f);
  if (last()) {
    // Logits are recomputed rather than kept: (N, vocab) is the largest buffer of the last stage.
    std::vector<float> logits(size_t(N) * V), dlogits(size_t(N) * V, 0.0f), dxf(nC, 0.0f);
    ref::linear_forward(logits.data(), ma.xf.data(), head_, nullptr, N, C, V);
    ref::cross_entropy_backward(dlogits.data(), logits.data(), ma.targets.data(), ma.mask.data(), loss_scale, N, V);
    logits.clear();
    logits.shrink_to_fit();
    ref::linear_backward_input(dxf.data(), dlogits.data(), head_, N, C, V);
    ref::rmsnorm_backward(dcur.data(), nullptr, dxf.data(), ma.final_in.data(), final_norm_, ma.rstdf.data(), N, C);
  } else {
    std::copy(grad_output, grad_output + nC, dcur.begin());
  }
  for (int li = num_local_layers() - 1; li >= 0; --li) {
    layer_backward(li, dcur.data(), ma.layers[li], B, T);
    ma.layers[li] = LayerActs();  // free as we go
  }
  if (first()) return {};
  return dcur;
}

}  // namespace confidant::agent
