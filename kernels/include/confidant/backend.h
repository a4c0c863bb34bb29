// The compute backends behind one small interface: the reference (naive, the spec), the CPU (threads + SIMD) and
// OpenCL (run-time loaded). Op names and argument order follow ref_ops.h, with two differences:
//  - matrix weights are WeightView (any format of weights.h) instead of const float*;
//  - attention keeps the per-row log-sum-exp lse (B,NH,T) instead of the (B,NH,T,T) probabilities, and its backward
//    recomputes the probabilities from q, k and lse (flash-attention style), so memory is O(T) per head.
// Every op a backend does not run natively (supports() == false) is forwarded to its fallback (the CPU backend),
// after synchronize(), so callers never need to check.
//
// Memory: every pointer is host memory. An op may run asynchronously: its outputs are valid, and its inputs may
// be modified or freed, only after synchronize() returns. The CPU and reference backends are synchronous.
// Backward ops ACCUMULATE (+=) into gradient outputs, as in ref_ops.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "confidant/weights.h"

namespace confidant {

enum class Op : uint8_t {
  Embedding,       // embedding_forward / embedding_backward
  RmsNorm,         // rmsnorm_forward / rmsnorm_backward
  Linear,          // linear_forward (incl. linear_lora_forward's base part)
  LinearBackward,  // linear_backward_input
  Lora,            // lora_forward / lora_backward
  Rope,            // rope_forward / rope_backward
  Attention,       // attention_forward / attention_backward
  SwiGlu,          // swiglu_forward / swiglu_backward
  Residual,        // residual_forward / residual_backward
  CrossEntropy,    // cross_entropy_forward / cross_entropy_backward
  AdamW,           // adamw_step
  kCount
};
const char* op_name(Op op);

struct BackendInfo {
  std::string name;    // "reference", "cpu", "opencl"
  std::string device;  // e.g. "x86_64 avx512 x 2 threads", "QUALCOMM Adreno(TM) 740 (OpenCL 3.0)"
  int threads = 1;     // CPU threads used (CPU backend), compute units (OpenCL)
  // OpenCL's CL_DEVICE_TYPE: "gpu", "cpu" (e.g. PoCL: the same cores as the CPU backend), "accelerator" or
  // "other"; empty for the host backends (reference, CPU).
  std::string device_type = {};
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendInfo info() const = 0;
  // Whether op runs natively on this backend for base weights of dtype w (w only matters for Linear,
  // LinearBackward and Embedding).
  virtual bool supports(Op op, WDType w = WDType::F32) const = 0;
  // Waits until every op issued so far has finished and its outputs are visible in host memory.
  virtual void synchronize() {}

  // ---- ops (see ref_ops.h for shapes and semantics) ----
  virtual void embedding_forward(float* out, const int32_t* tokens, const WeightView& wte, int N, int C) = 0;
  // dwte is f32 (V,C); only used when embeddings are trained.
  virtual void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) = 0;

  virtual void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) = 0;
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                                const float* rstd, int N, int C) = 0;

  // out (N,OC) = x (N,C) @ W^T + bias; W is (OC,C) in any format.
  virtual void linear_forward(float* out, const float* x, const WeightView& W, const float* bias, int N, int C,
                              int OC) = 0;
  // dx (N,C) += dout (N,OC) @ W
  virtual void linear_backward_input(float* dx, const float* dout, const WeightView& W, int N, int C, int OC) = 0;

  virtual void lora_forward(float* out, float* xa, const float* x, const float* A, const float* B, int N, int C, int R,
                            int OC, float scale) = 0;
  virtual void lora_backward(float* dx, float* dA, float* dB, const float* dout, const float* x, const float* xa,
                             const float* A, const float* B, int N, int C, int R, int OC, float scale) = 0;
  // Base matmul and LoRA branch in one call: out = x @ W^T + bias + scale * (x @ A^T) @ B^T, xa = x @ A^T.
  // A == nullptr means no adapter. Backends fuse it where that pays; the default runs the two ops.
  virtual void linear_lora_forward(float* out, float* xa, const float* x, const WeightView& W, const float* bias,
                                   const float* A, const float* B, int N, int C, int R, int OC, float scale);
  // out (N,OC) = x (N,C) @ W^T + bias + xl (N,K) @ L^T with L (OC,K) f32: a base matmul plus a low-rank term whose
  // left factor the caller made (P-RGE: every copy's adapter and perturbation in one term, layer.cpp). The CPU
  // backend adds the term in the base matmul's one pass over out; the default runs linear_forward and lora_forward
  // with an identity A, then synchronizes (its scratch dies on return).
  virtual void linear_lowrank_forward(float* out, const float* x, const WeightView& W, const float* bias,
                                      const float* xl, const float* L, int N, int C, int K, int OC);

  // inv_freq (HD/2): the model's RoPE frequencies (ref::rope_default_inv_freq, or a scaled table); the backend may
  // cache tables derived from it by content, so the caller may free it after the call.
  virtual void rope_forward(float* out, const float* in, int B, int T, int NH, int HD, int pos0,
                            const float* inv_freq) = 0;
  virtual void rope_backward(float* din, const float* dout, int B, int T, int NH, int HD, int pos0,
                             const float* inv_freq) = 0;

  // q, out (B,T,NH,HD); k, v (B,T,NKV,HD); lse (B,NH,T), nullable when no backward will follow.
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T,
                                 int NH, int NKV, int HD) = 0;
  // out and lse as written by attention_forward for the same q, k, v.
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                                  const float* lse, const float* q, const float* k, const float* v, int B, int T,
                                  int NH, int NKV, int HD) = 0;

  virtual void swiglu_forward(float* h, const float* g, const float* u, int N, int H) = 0;
  virtual void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int N, int H) = 0;

  virtual void residual_forward(float* out, const float* a, const float* b, size_t n) = 0;
  virtual void residual_backward(float* da, float* db, const float* dout, size_t n) = 0;

  virtual double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, const float* mask,
                                       int N, int V) = 0;
  virtual void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* mask,
                                      float dloss, int N, int V) = 0;

  virtual void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1,
                          float beta2, float eps, float weight_decay, int t, float grad_scale) = 0;
};

// The naive reference ops (ref_ops.h) behind the interface; dequantises weight rows on the fly.
std::unique_ptr<Backend> make_reference_backend();

// threads <= 0: one per core of the fastest cluster (big cores on big.LITTLE phones), see cpu_default_threads().
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);
int cpu_default_threads();

// Loads the OpenCL library at run time (libOpenCL.so; Android vendor paths too) and picks a GPU device, else any
// device. Returns nullptr and fills why_not when OpenCL is unavailable; the agent then runs CPU only and says so.
// fallback (not owned, must outlive the backend) runs the ops OpenCL does not support.
std::unique_ptr<Backend> make_opencl_backend(Backend* fallback, std::string* why_not);

}  // namespace confidant
