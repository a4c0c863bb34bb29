// The LoRA adapters of one stage: values, gradients and AdamW state per (layer, module), with the tensor names and
// order of docs/protocol.md ("LoRA tensor names"). Not the forward/backward math (stage_model.h).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol.h"
#include "stage_file.h"

namespace confidant::agent {

// One adapter on a projection W (out, in): delta = scale * B (out, r) @ A (r, in).
struct LoraAdapter {
  uint32_t layer = 0;  // global layer index
  LoraModule module = kQ;
  int in = 0, out = 0;
  std::vector<float> A, B;    // (r, in), (out, r)
  std::vector<float> dA, dB;  // gradients; dA empty when A is frozen
  std::vector<float> mA, vA, mB, vB;  // AdamW moments; mA/vA empty when A is frozen
};

class LoraError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

const char* lora_module_path(LoraModule m);  // "self_attn.q_proj", ..., "mlp.down_proj"

class LoraSet {
 public:
  LoraSet() = default;
  // rank 0 or mask 0: no adapters. Every A and B starts at zero (the host initialises them with SET_LORA).
  LoraSet(const StageConfig& c, uint32_t rank, float alpha, uint32_t target_mask, bool train_a);

  // Bytes this configuration allocates (values, gradients, moments), for the memory budget before building it.
  static uint64_t bytes_needed(const StageConfig& c, uint32_t rank, uint32_t target_mask, bool train_a);

  const LoraAdapter* find(uint32_t layer, LoraModule m) const;
  LoraAdapter* find(uint32_t layer, LoraModule m);
  int rank() const { return static_cast<int>(rank_); }
  float scale() const { return scale_; }
  bool train_a() const { return train_a_; }
  bool empty() const { return adapters_.empty(); }
  uint64_t param_count() const;  // elements of every A and B
  uint64_t bytes() const;

  static std::string tensor_name(uint32_t layer, LoraModule m, bool is_b);

  // SET_LORA: every tensor of the stage exactly once, f32, right shape; nothing else. Throws LoraError.
  // Also zeroes the gradients and the AdamW moments (new values make the old ones meaningless), unless the list
  // also holds "<name>.adam_m" and "<name>.adam_v" of trainable tensors: those moments are restored (checkpoints).
  void set(const std::vector<NamedTensor>& tensors);
  // GET_LORA: in protocol order; with_grads adds "<name>.grad" after every trainable tensor, with_moments then
  // "<name>.adam_m" and "<name>.adam_v".
  std::vector<NamedTensor> get(bool with_grads, bool with_moments = false) const;

  // P-RGE update, B <- B - lr * mean_i(g_i * z_i), z_i regenerated from (seed, step, i, parameter id) exactly as
  // the batched forward drew them (prge.h); g has one projected gradient per query. A is never touched (LoRA-FA).
  void zo_update(uint64_t seed, uint32_t step, const std::vector<float>& g, float lr);
  // Parameter id of B of adapter index k (protocol order), the key prge.h mixes in.
  static uint32_t zo_param_id(uint32_t layer, LoraModule m) { return layer * kNumLoraModules + m; }
  const std::vector<LoraAdapter>& adapters() const { return adapters_; }

  void zero_grad();
  double grad_sum_squares() const;  // over trainable tensors only (B, and A when trainable)
  void optim_step(const OptimStepRequest& s);  // AdamW on trainable tensors, then zero_grad

 private:
  uint32_t rank_ = 0;
  float scale_ = 0;
  bool train_a_ = false;
  std::vector<LoraAdapter> adapters_;  // protocol order: by layer, then q, k, v, o, gate, up, down
};

}  // namespace confidant::agent
