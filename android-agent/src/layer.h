// One Llama decoder layer (Hugging Face semantics) computed as up to two SHARES on two backends at once: the
// secondary (OpenCL) takes KV groups [0, g) of attention and MLP columns [0, m), the primary takes the rest.
// Each share computes q/k/v for its heads (row slices of Wq/Wk/Wv = column slices of the output), its attention,
// and a partial o_proj from its columns of Wo; the MLP share likewise computes its gate/up rows and a partial
// down_proj from its columns of Wd. The partial outputs are summed. With g = m = 0 the primary does everything,
// and that is the unsplit layer. Also applies the P-RGE perturbation of every LoRA B per copy of the batch.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "confidant/backend.h"
#include "lora.h"
#include "stage_model_types.h"
#include "stats.h"

namespace confidant::agent {

struct LayerWeights {
  const float *ln1 = nullptr, *ln2 = nullptr;         // (C)
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr;  // nullable (Qwen2 has q/k/v biases)
  WeightView wq, wk, wv, wo, wg, wu, wd;              // HF layout (out, in), any stored format
};

// Everything one layer's math needs besides the activations.
struct LayerCtx {
  const LayerWeights* w = nullptr;
  uint32_t layer = 0;  // global index (LoRA names, P-RGE parameter ids)
  int B = 0, T = 0, N = 0, C = 0, I = 0, NH = 0, NKV = 0, HD = 0;
  float eps = 0;
  const float* inv_freq = nullptr;  // (HD/2) RoPE frequencies of the model (StageModel::rope_inv_freq)
  std::array<const LoraAdapter*, kNumLoraModules> lora{};  // nullptr: module not adapted
  int R = 0;
  float scale = 0;
  bool train_a = false;
  const ZoPerturbation* zo = nullptr;
  SecondaryTime* secondary_time = nullptr;  // where a split layer adds the secondary's time; nullable
};

// Float buffers that must outlive asynchronous backend ops until the next synchronize().
class Arena {
 public:
  float* get(size_t n, bool zero);
  void clear() { bufs_.clear(); }

 private:
  std::vector<std::unique_ptr<float[]>> bufs_;
};

// One share of the attention block: KV groups [kv0, kv0 + nkv), heads [kv0*G, (kv0+nkv)*G), G = NH/NKV.
struct AttnShare {
  int kv0 = 0, nkv = 0;
  std::vector<float> q, k, v;  // (N, nh*HD), (N, nkv*HD) x2, after RoPE
  std::vector<float> y;        // (N, nh*HD) attention output (o_proj input)
  std::vector<float> lse;      // (B, nh, T)
  std::vector<float> xa[4];    // (N, R) x @ A^T for q, k, v, o when adapted
};

// One share of the MLP: intermediate columns [c0, c0 + nc).
struct MlpShare {
  int c0 = 0, nc = 0;
  std::vector<float> g, u, s;  // (N, nc) gate, up, silu(gate)*up
  std::vector<float> xa[3];    // (N, R) for gate, up, down when adapted
};

struct LayerActs {
  std::vector<float> x;           // (N,C) layer input
  std::vector<float> xn1, rstd1;  // (N,C), (N)
  std::vector<float> h;           // (N,C) after the attention residual
  std::vector<float> xn2, rstd2;  // (N,C), (N)
  AttnShare attn[2];              // [0] secondary, [1] primary; nkv == 0 means no share
  MlpShare mlp[2];
};

// Sets the shares of la from the split and allocates every buffer but x (sizes depend only on ctx and the split).
// Returns the floats it allocated (or would allocate when la is nullptr), for memory accounting.
size_t alloc_layer_acts(LayerActs* la, const LayerCtx& c, const LayerSplit& split);

// Floats la holds (every buffer's capacity), for accounting activations kept for reuse.
size_t layer_acts_floats(const LayerActs& la);

// cur (N,C): the residual stream, layer input on entry, layer output on return. The primary runs share [1], the
// secondary (nullable when no share [0]) share [0], concurrently. la comes from alloc_layer_acts.
void layer_forward(const LayerCtx& c, Backend& primary, Backend* secondary, float* cur, LayerActs& la);
// dcur (N,C): gradient w.r.t. the layer output on entry, w.r.t. the layer input on return; la.x must hold the
// layer input. LoRA gradients accumulate into the adapters in grads (per module; nullptr where not adapted).
void layer_backward(const LayerCtx& c, Backend& primary, Backend* secondary,
                    const std::array<LoraAdapter*, kNumLoraModules>& grads, float* dcur, const LayerActs& la);

// Median wall milliseconds of reps runs of run() after one warm-up, each ended by be.synchronize().
double median_ms(Backend& be, int reps, const std::function<void()>& run);

// Profiler: median milliseconds of the whole attention block and the whole MLP of one layer run as a single share
// on backend be (synchronised), forward and backward. la must come from alloc_layer_acts with an empty split and
// hold inputs. LoRA gradients computed on the way are discarded.
struct ShareTimesMs {
  double attn_forward = 0, attn_backward = 0, mlp_forward = 0, mlp_backward = 0;
};
ShareTimesMs time_shares(const LayerCtx& c, Backend& be, LayerActs& la, int reps);

}  // namespace confidant::agent
