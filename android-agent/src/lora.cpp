// LoRA adapter storage, naming, SET/GET_LORA validation, gradient norm and AdamW (docs/protocol.md).
#include "lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "confidant/prge.h"
#include "confidant/ref_ops.h"

namespace confidant::agent {

namespace {

void module_dims(const StageConfig& c, LoraModule m, int* in, int* out) {
  const int H = static_cast<int>(c.hidden_size), I = static_cast<int>(c.intermediate_size);
  const int Q = static_cast<int>(c.q_dim()), KV = static_cast<int>(c.kv_dim());
  switch (m) {
    case kQ: *in = H, *out = Q; break;
    case kK:
    case kV: *in = H, *out = KV; break;
    case kO: *in = Q, *out = H; break;
    case kGate:
    case kUp: *in = H, *out = I; break;
    case kDown: *in = I, *out = H; break;
    default: *in = *out = 0; break;
  }
}

std::string shape_str(const std::vector<uint32_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace

const char* lora_module_path(LoraModule m) {
  switch (m) {
    case kQ: return "self_attn.q_proj";
    case kK: return "self_attn.k_proj";
    case kV: return "self_attn.v_proj";
    case kO: return "self_attn.o_proj";
    case kGate: return "mlp.gate_proj";
    case kUp: return "mlp.up_proj";
    case kDown: return "mlp.down_proj";
    default: return "?";
  }
}

std::string LoraSet::tensor_name(uint32_t layer, LoraModule m, bool is_b) {
  return "model.layers." + std::to_string(layer) + "." + lora_module_path(m) + (is_b ? ".lora_B" : ".lora_A");
}

uint64_t LoraSet::bytes_needed(const StageConfig& c, uint32_t rank, uint32_t target_mask, bool train_a) {
  if (rank == 0) return 0;
  uint64_t total = 0;
  for (int m = 0; m < kNumLoraModules; ++m) {
    if (!(target_mask & (1u << m))) continue;
    int in = 0, out = 0;
    module_dims(c, static_cast<LoraModule>(m), &in, &out);
    const uint64_t a = uint64_t(rank) * in, b = uint64_t(out) * rank;
    // B: value, grad, m, v. A: value, plus grad, m, v when trainable.
    total += (4 * b + (train_a ? 4 : 1) * a) * sizeof(float);
  }
  return total * (c.layer_end - c.layer_start);
}

LoraSet::LoraSet(const StageConfig& c, uint32_t rank, float alpha, uint32_t target_mask, bool train_a)
    : rank_(rank), scale_(rank ? alpha / static_cast<float>(rank) : 0.0f), train_a_(train_a) {
  if (rank == 0) return;
  for (uint32_t layer = c.layer_start; layer < c.layer_end; ++layer) {
    for (int m = 0; m < kNumLoraModules; ++m) {
      if (!(target_mask & (1u << m))) continue;
      LoraAdapter a;
      a.layer = layer;
      a.module = static_cast<LoraModule>(m);
      module_dims(c, a.module, &a.in, &a.out);
      const size_t na = size_t(rank) * a.in, nb = size_t(a.out) * rank;
      a.A.assign(na, 0.0f);
      a.B.assign(nb, 0.0f);
      a.dB.assign(nb, 0.0f);
      a.mB.assign(nb, 0.0f);
      a.vB.assign(nb, 0.0f);
      if (train_a) {
        a.dA.assign(na, 0.0f);
        a.mA.assign(na, 0.0f);
        a.vA.assign(na, 0.0f);
      }
      adapters_.push_back(std::move(a));
    }
  }
}

const LoraAdapter* LoraSet::find(uint32_t layer, LoraModule m) const {
  for (const LoraAdapter& a : adapters_) {
    if (a.layer == layer && a.module == m) return &a;
  }
  return nullptr;
}

LoraAdapter* LoraSet::find(uint32_t layer, LoraModule m) {
  return const_cast<LoraAdapter*>(static_cast<const LoraSet*>(this)->find(layer, m));
}

uint64_t LoraSet::param_count() const {
  uint64_t n = 0;
  for (const LoraAdapter& a : adapters_) n += a.A.size() + a.B.size();
  return n;
}

uint64_t LoraSet::bytes() const {
  uint64_t n = 0;
  for (const LoraAdapter& a : adapters_) {
    n += (a.A.size() + a.B.size() + a.dA.size() + a.dB.size() + a.mA.size() + a.vA.size() + a.mB.size() +
          a.vB.size()) *
         sizeof(float);
  }
  return n;
}

void LoraSet::set(const std::vector<NamedTensor>& tensors) {
  std::map<std::string, const Tensor*> by_name;
  for (const NamedTensor& nt : tensors) {
    if (!by_name.emplace(nt.name, &nt.tensor).second) throw LoraError("SET_LORA: tensor '" + nt.name + "' appears twice");
  }
  // Validate everything before changing anything, so a rejected SET_LORA leaves the adapters as they were.
  size_t matched = 0;
  auto check = [&](const std::string& name, const std::vector<uint32_t>& want, bool required) -> bool {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (required) throw LoraError("SET_LORA: tensor '" + name + "' is missing");
      return false;
    }
    const Tensor& t = *it->second;
    if (t.dtype != DType::F32 || t.dims != want) {
      throw LoraError("SET_LORA: tensor '" + name + "' is " + t.shape_string() + ", expected f32 " + shape_str(want));
    }
    ++matched;
    return true;
  };
  for (const LoraAdapter& a : adapters_) {
    for (int is_b = 0; is_b < 2; ++is_b) {
      const std::string name = tensor_name(a.layer, a.module, is_b);
      const std::vector<uint32_t> want =
          is_b ? std::vector<uint32_t>{uint32_t(a.out), rank_} : std::vector<uint32_t>{rank_, uint32_t(a.in)};
      check(name, want, true);
      // Optional AdamW moments of trainable tensors; both or neither (a lone one would be a half-restored state).
      if (is_b || train_a_) {
        const bool m = check(name + ".adam_m", want, false), v = check(name + ".adam_v", want, false);
        if (m != v) throw LoraError("SET_LORA: '" + name + "' has only one of .adam_m and .adam_v");
      }
    }
  }
  if (matched != by_name.size()) {
    for (const auto& kv : by_name) {
      bool known = false;
      for (const LoraAdapter& a : adapters_) {
        for (int is_b = 0; is_b < 2; ++is_b) {
          const std::string n = tensor_name(a.layer, a.module, is_b);
          known = known || kv.first == n || kv.first == n + ".adam_m" || kv.first == n + ".adam_v";
        }
      }
      if (!known) throw LoraError("SET_LORA: tensor '" + kv.first + "' is not a LoRA tensor of this stage");
    }
  }
  auto restore = [&](std::vector<float>& dst, const std::string& name) {
    auto it = by_name.find(name);
    if (it == by_name.end()) std::fill(dst.begin(), dst.end(), 0.0f);
    else std::memcpy(dst.data(), it->second->data.data(), it->second->data.size());
  };
  for (LoraAdapter& a : adapters_) {
    const std::string na = tensor_name(a.layer, a.module, false), nb = tensor_name(a.layer, a.module, true);
    const Tensor& ta = *by_name[na];
    const Tensor& tb = *by_name[nb];
    std::memcpy(a.A.data(), ta.data.data(), ta.data.size());
    std::memcpy(a.B.data(), tb.data.data(), tb.data.size());
    restore(a.mA, na + ".adam_m");
    restore(a.vA, na + ".adam_v");
    restore(a.mB, nb + ".adam_m");
    restore(a.vB, nb + ".adam_v");
  }
  zero_grad();
}

std::vector<NamedTensor> LoraSet::get(bool with_grads, bool with_moments) const {
  std::vector<NamedTensor> out;
  const uint32_t r = rank_;
  for (const LoraAdapter& a : adapters_) {
    const std::string na = tensor_name(a.layer, a.module, false), nb = tensor_name(a.layer, a.module, true);
    const std::vector<uint32_t> da{r, uint32_t(a.in)}, db{uint32_t(a.out), r};
    out.push_back({na, Tensor::make_f32(da, a.A.data())});
    if (train_a_) {
      if (with_grads) out.push_back({na + ".grad", Tensor::make_f32(da, a.dA.data())});
      if (with_moments) {
        out.push_back({na + ".adam_m", Tensor::make_f32(da, a.mA.data())});
        out.push_back({na + ".adam_v", Tensor::make_f32(da, a.vA.data())});
      }
    }
    out.push_back({nb, Tensor::make_f32(db, a.B.data())});
    if (with_grads) out.push_back({nb + ".grad", Tensor::make_f32(db, a.dB.data())});
    if (with_moments) {
      out.push_back({nb + ".adam_m", Tensor::make_f32(db, a.mB.data())});
      out.push_back({nb + ".adam_v", Tensor::make_f32(db, a.vB.data())});
    }
  }
  return out;
}

void LoraSet::zero_grad() {
  for (LoraAdapter& a : adapters_) {
    std::fill(a.dA.begin(), a.dA.end(), 0.0f);
    std::fill(a.dB.begin(), a.dB.end(), 0.0f);
  }
}

double LoraSet::grad_sum_squares() const {
  double s = 0;
  for (const LoraAdapter& a : adapters_) {
    for (float g : a.dA) s += double(g) * g;
    for (float g : a.dB) s += double(g) * g;
  }
  return s;
}

void LoraSet::optim_step(const OptimStepRequest& s) {
  const int t = static_cast<int>(s.step);
  for (LoraAdapter& a : adapters_) {
    if (train_a_) {
      ref::adamw_step(a.A.data(), a.dA.data(), a.mA.data(), a.vA.data(), a.A.size(), s.lr, s.beta1, s.beta2, s.eps,
                      s.weight_decay, t, s.grad_scale);
    }
    ref::adamw_step(a.B.data(), a.dB.data(), a.mB.data(), a.vB.data(), a.B.size(), s.lr, s.beta1, s.beta2, s.eps,
                    s.weight_decay, t, s.grad_scale);
  }
  zero_grad();
}

void LoraSet::zo_update(uint64_t seed, uint32_t step, const std::vector<float>& g, float lr) {
  // Checked before touching anything: a NaN here would silently poison every B of the stage.
  if (g.empty()) throw LoraError("ZO update: no projected gradients (needs one per query, q >= 1)");
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) {
      throw LoraError("ZO update: projected gradient g[" + std::to_string(i) + "] is " + std::to_string(g[i]) +
                      " (a perturbed loss was not finite: lower eps or the learning rate, or resume from the last "
                      "checkpoint)");
    }
  }
  if (!std::isfinite(lr)) throw LoraError("ZO update: learning rate is " + std::to_string(lr) + ", not finite");
  const uint32_t q = static_cast<uint32_t>(g.size());
  for (LoraAdapter& a : adapters_) {  // LoRA-FA: only B moves
    prge_update(a.B.data(), a.B.size(), g.data(), q, lr, seed, step, zo_param_id(a.layer, a.module));
  }
}

}  // namespace confidant::agent
