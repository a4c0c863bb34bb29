// One pipeline stage of a Llama decoder (Hugging Face semantics): layers [layer_start, layer_end), plus the token
// embedding on the first stage and final RMSNorm + LM head + masked cross-entropy on the last, with LoRA adapters.
// Forward keeps per-micro_id activations when asked; backward consumes them. Not the protocol (agent.h).
#pragma once
#include <cstddef>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "engine.h"
#include "layer.h"
#include "stage_model_types.h"
#include "lora.h"
#include "stage_file.h"

namespace confidant::agent {

struct ForwardArgs {
  uint32_t micro_id = 0;
  int B = 0, T = 0;
  const int32_t* tokens = nullptr;  // (B,T), first stage
  const float* hidden = nullptr;    // (B,T,hidden), other stages
  const int32_t* targets = nullptr; // (B,T), last stage, nullable
  const float* mask = nullptr;      // (B,T), with targets
  bool keep = false;                // keep activations for BACKWARD of micro_id
  bool want_logits = false;         // last stage only
  const ZoPerturbation* zo = nullptr;  // P-RGE batched forward (keep must be false)
};

struct ForwardResult {
  std::vector<float> hidden;  // (B,T,hidden) when not the last stage
  double loss_sum = 0;        // last stage, with targets
  double weight_sum = 0;
  std::vector<float> logits;  // (B,T,vocab) when asked
  // P-RGE on the last stage with targets: loss and mask-weight sums per copy (2*queries entries, +/- pairs).
  std::vector<double> copy_loss_sums, copy_weight_sums;
};

class StageModel {
 public:
  // Takes the validated file. Matrices are used in their stored format (f32, f16 or quantised) straight from the
  // mapping; only 1-D f16 tensors (norms, biases) are widened to small f32 copies.
  StageModel(Engine& engine, std::unique_ptr<StageFile> file, LoraSet lora);

  const StageConfig& config() const { return file_->config(); }
  const StageFile& file() const { return *file_; }
  LoraSet& lora() { return lora_; }
  const LoraSet& lora() const { return lora_; }
  bool first() const { return config().has_embedding(); }
  bool last() const { return config().has_head(); }
  int num_local_layers() const { return static_cast<int>(config().layer_end - config().layer_start); }
  // Base weights in memory: the mapped tensors plus the f32 copies of 1-D f16 tensors.
  uint64_t weight_bytes() const { return file_->tensor_bytes() + converted_bytes_; }
  Engine& engine() { return engine_; }

  // Refuses T above the model's sliding_window (Mistral) with std::invalid_argument: full attention is exact only
  // inside the window.
  ForwardResult forward(const ForwardArgs& a);
  // (head_dim/2) RoPE frequencies: the file's rope.inv_freq (scaled RoPE) or 1 / theta^(2i/head_dim).
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }
  // Starts from grad_output (B,T,hidden) or, on the last stage (grad_output null), from the loss with
  // dloss = loss_scale per unit of mask weight. Accumulates LoRA gradients, releases micro_id's activations and
  // returns the gradient w.r.t. the stage input (B,T,hidden), empty on the first stage.
  std::vector<float> backward(uint32_t micro_id, float loss_scale, const float* grad_output);

  // SET_SPLIT: one entry per local layer; throws std::invalid_argument when a split is impossible (no secondary
  // backend, more groups than the layer has, a slice the weight format cannot take, columns beyond the MLP).
  void set_split(const std::vector<LayerSplit>& splits);
  const std::vector<LayerSplit>& split() const { return split_; }
  // Activation checkpointing: keep only each layer's input per micro-batch and recompute the rest in BACKWARD.
  void set_recompute(bool on) {
    recompute_ = on;
    drop_spare_activations();
  }
  bool recompute() const { return recompute_; }

  bool has_activations(uint32_t micro_id) const { return acts_.count(micro_id) != 0; }
  bool activations_have_targets(uint32_t micro_id) const;
  void activation_shape(uint32_t micro_id, int* B, int* T) const;
  void release_activations(uint32_t micro_id) { acts_.erase(micro_id); }
  void release_all_activations() {
    acts_.clear();
    drop_spare_activations();
  }

  // Memory accounting, in bytes, from the same size computations that allocate the buffers.
  uint64_t kept_activation_bytes() const;                   // everything currently kept
  uint64_t spare_activation_bytes() const;                  // a released micro-batch's, held for reuse
  uint64_t activation_bytes(int B, int T) const;            // what keep=true stores for one micro-batch
  uint64_t forward_scratch_bytes(int B, int T, bool keep) const;
  uint64_t backward_scratch_bytes(int B, int T) const;

  // The context of local layer li for a (B,T) micro-batch (the profiler runs layers and shares directly).
  LayerCtx layer_ctx(int li, int B, int T, const ZoPerturbation* zo) const;
  std::array<LoraAdapter*, kNumLoraModules> layer_grads(int li);

 private:
  struct MicroActs {
    int B = 0, T = 0;
    std::vector<LayerActs> layers;           // with recompute on: only each layer's input x
    std::vector<float> final_in, xf, rstdf;  // last stage: (N,C) final-norm input, normed, (N)
    bool has_targets = false;
    std::vector<int32_t> targets;  // (N)
    std::vector<float> mask;       // (N)
  };

  const float* vector_weight(const std::string& name);
  WeightView matrix_weight(const std::string& name);
  void run_layer_forward(int li, float* cur, LayerActs& la, int B, int T, const ZoPerturbation* zo);
  void drop_spare_activations() {
    spare_acts_.clear();
    spare_acts_.shrink_to_fit();
    spare_B_ = spare_T_ = 0;
  }

  Engine& engine_;
  std::unique_ptr<StageFile> file_;
  LoraSet lora_;
  std::vector<float> inv_freq_;
  std::vector<std::vector<float>> converted_;  // f32 copies of 1-D f16 tensors
  uint64_t converted_bytes_ = 0;
  WeightView embed_, head_;
  const float* final_norm_ = nullptr;
  std::vector<LayerWeights> layers_;
  std::vector<LayerSplit> split_;
  bool recompute_ = false;
  std::map<uint32_t, MicroActs> acts_;
  // One layer's activations for forwards that keep nothing (evaluation, P-RGE, generation), reused from call to
  // call: reallocating them (~60 MB at TinyLlama T=512) cost page faults and zero fills every layer. Released by
  // a keeping forward, so a training step does not hold it next to the kept activations.
  LayerActs scratch_acts_;
  // The layer activations of the micro-batch BACKWARD released last, handed to the next keeping FORWARD of the
  // same shape: in 1F1B a backward is followed by a forward, and reallocating the buffers cost page faults and
  // zero fills (+27% on a hidden-512 layer forward, measured). One micro-batch's worth at most; counted as
  // resident (Session::committed_bytes) until a forward takes it or anything else drops it.
  std::vector<LayerActs> spare_acts_;
  int spare_B_ = 0, spare_T_ = 0;
};

}  // namespace confidant::agent
