// One pipeline stage of a Llama decoder (Hugging Face semantics): layers [layer_start, layer_end), plus the token
// embedding on the first stage and final RMSNorm + LM head + masked cross-entropy on the last, with LoRA adapters.
// Forward keeps per-micro_id activations when asked; backward consumes them. Not the protocol (agent.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

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
};

struct ForwardResult {
  std::vector<float> hidden;  // (B,T,hidden) when not the last stage
  double loss_sum = 0;        // last stage, with targets
  double weight_sum = 0;
  std::vector<float> logits;  // (B,T,vocab) when asked
};

class StageModel {
 public:
  // Takes the validated file; f16 tensors are widened to f32 copies (the reference kernels are fp32).
  StageModel(std::unique_ptr<StageFile> file, LoraSet lora);

  const StageConfig& config() const { return file_->config(); }
  const StageFile& file() const { return *file_; }
  LoraSet& lora() { return lora_; }
  const LoraSet& lora() const { return lora_; }
  bool first() const { return config().has_embedding(); }
  bool last() const { return config().has_head(); }
  int num_local_layers() const { return static_cast<int>(config().layer_end - config().layer_start); }
  // Base weights in memory: the mapped tensors plus any f32 copies of f16 tensors.
  uint64_t weight_bytes() const { return file_->tensor_bytes() + converted_bytes_; }

  ForwardResult forward(const ForwardArgs& a);
  // Starts from grad_output (B,T,hidden) or, on the last stage (grad_output null), from the loss with
  // dloss = loss_scale per unit of mask weight. Accumulates LoRA gradients, releases micro_id's activations and
  // returns the gradient w.r.t. the stage input (B,T,hidden), empty on the first stage.
  std::vector<float> backward(uint32_t micro_id, float loss_scale, const float* grad_output);

  bool has_activations(uint32_t micro_id) const { return acts_.count(micro_id) != 0; }
  bool activations_have_targets(uint32_t micro_id) const;
  void activation_shape(uint32_t micro_id, int* B, int* T) const;
  void release_activations(uint32_t micro_id) { acts_.erase(micro_id); }
  void release_all_activations() { acts_.clear(); }

  // Memory accounting, in bytes, exactly as the buffers below are sized.
  uint64_t kept_activation_bytes() const;                   // everything currently kept
  uint64_t activation_bytes(int B, int T) const;            // what keep=true stores for one micro-batch
  uint64_t forward_scratch_bytes(int B, int T, bool keep) const;
  uint64_t backward_scratch_bytes(int B, int T) const;

 private:
  struct LayerWeights {
    const float *ln1, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *ln2, *wg, *wu, *wd;
  };
  struct LayerActs {
    std::vector<float> x;           // (N,C) layer input
    std::vector<float> xn1, rstd1;  // (N,C), (N)
    std::vector<float> q, k, v;     // (N,NH*HD), (N,NKV*HD) x2; q and k after RoPE
    std::vector<float> y;           // (N,NH*HD) attention output = o_proj input
    std::vector<float> h;           // (N,C) after the attention residual
    std::vector<float> xn2, rstd2;  // (N,C), (N)
    std::vector<float> g, u, s;     // (N,I) gate, up, silu(gate)*up
    std::vector<float> xa[kNumLoraModules];  // (N,R) x @ A^T per adapted module
  };
  struct MicroActs {
    int B = 0, T = 0;
    std::vector<LayerActs> layers;
    std::vector<float> final_in, xf, rstdf;  // last stage: (N,C) final-norm input, normed, (N)
    bool has_targets = false;
    std::vector<int32_t> targets;  // (N)
    std::vector<float> mask;       // (N)
  };

  const float* weight(const std::string& name);
  void alloc_layer(LayerActs& la, int N, bool keep) const;
  uint64_t layer_act_floats_per_row() const;
  void project(float* out, float* xa, const float* x, const float* W, const float* bias, int N, int C, int OC,
               uint32_t layer, LoraModule m) const;
  void project_backward(float* dx, const float* dout, const float* x, const float* xa, const float* W, int N, int C,
                        int OC, uint32_t layer, LoraModule m);
  void layer_forward(int li, float* cur, LayerActs& la, std::vector<float>& tmp, std::vector<float>& att, int B, int T,
                     bool keep);
  void layer_backward(int li, float* dcur, const LayerActs& la, int B, int T);

  std::unique_ptr<StageFile> file_;
  LoraSet lora_;
  std::vector<std::vector<float>> converted_;  // f32 copies of f16 tensors
  uint64_t converted_bytes_ = 0;
  const float* embed_ = nullptr;
  const float* final_norm_ = nullptr;
  const float* head_ = nullptr;
  std::vector<LayerWeights> layers_;
  std::map<uint32_t, MicroActs> acts_;
};

}  // namespace confidant::agent
