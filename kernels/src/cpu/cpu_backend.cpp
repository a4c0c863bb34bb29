// The CPU backend: the matmuls of matmul.h (blocked, threaded, SIMD level picked at run time) and the other ops of
// cpu_ops.h, all on one thread pool. Synchronous: every op has finished when its call returns.
#include <memory>
#include <string>

#include "confidant/backend.h"
#include "cpu_ops.h"
#include "matmul.h"
#include "matmul_kernels.h"
#include "simd_level.h"
#include "thread_pool.h"

namespace confidant {

namespace {

const char* arch_name() {
#if defined(__x86_64__) || defined(_M_X64)
  return "x86_64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__arm__)
  return "arm";
#else
  return "cpu";
#endif
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads)
      : pool_(threads > 0 ? threads : cpu_default_threads()),
        mm_(cpu::matmul_kernels(cpu::simd_level_choose())) {}

  BackendInfo info() const override {
    const int n = pool_.size();
    return {"cpu",
            std::string(arch_name()) + " " + cpu::simd_level_name(mm_.level) + " x" + std::to_string(n) +
                (n == 1 ? " thread" : " threads"),
            n};
  }
  // Every op runs here for every weight format (nothing is forwarded to another device).
  bool supports(Op op, WDType) const override { return op != Op::kCount; }

  // ---- matmuls ----
  void linear_forward(float* out, const float* x, const WeightView& W, const float* bias, int N, int C,
                      int OC) override {
    cpu::linear_forward(pool_, mm_, out, x, W, bias, N, C, OC);
  }
  void linear_backward_input(float* dx, const float* dout, const WeightView& W, int N, int C, int OC) override {
    cpu::linear_backward_input(pool_, mm_, dx, dout, W, N, C, OC);
  }
  void lora_forward(float* out, float* xa, const float* x, const float* A, const float* B, int N, int C, int R, int OC,
                    float scale) override {
    cpu::lora_forward(pool_, mm_, out, xa, x, A, B, N, C, R, OC, scale);
  }
  void lora_backward(float* dx, float* dA, float* dB, const float* dout, const float* x, const float* xa,
                     const float* A, const float* B, int N, int C, int R, int OC, float scale) override {
    cpu::lora_backward(pool_, mm_, dx, dA, dB, dout, x, xa, A, B, N, C, R, OC, scale);
  }
  void linear_lora_forward(float* out, float* xa, const float* x, const WeightView& W, const float* bias,
                           const float* A, const float* B, int N, int C, int R, int OC, float scale) override {
    cpu::linear_lora_forward(pool_, mm_, out, xa, x, W, bias, A, B, N, C, R, OC, scale);
  }
  void linear_lowrank_forward(float* out, const float* x, const WeightView& W, const float* bias, const float* xl,
                              const float* L, int N, int C, int K, int OC) override {
    cpu::linear_lowrank_forward(pool_, mm_, out, x, W, bias, xl, L, N, C, K, OC);
  }

  // ---- the other ops (cpu_ops.h: threaded, auto-vectorised) ----
  void embedding_forward(float* out, const int32_t* tokens, const WeightView& wte, int N, int C) override {
    cpu::embedding_forward(pool_, out, tokens, wte, N, C);
  }
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) override {
    cpu::embedding_backward(pool_, dwte, dout, tokens, N, C);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) override {
    cpu::rmsnorm_forward(pool_, out, rstd, x, w, N, C, eps);
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                        int N, int C) override {
    cpu::rmsnorm_backward(pool_, dx, dw, dout, x, w, rstd, N, C);
  }
  void rope_forward(float* out, const float* in, int B, int T, int NH, int HD, int pos0, const float* inv_freq) override {
    cpu::rope_forward(pool_, out, in, B, T, NH, HD, pos0, inv_freq);
  }
  void rope_backward(float* din, const float* dout, int B, int T, int NH, int HD, int pos0,
                     const float* inv_freq) override {
    cpu::rope_backward(pool_, din, dout, B, T, NH, HD, pos0, inv_freq);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T, int NH,
                         int NKV, int HD) override {
    cpu::attention_forward(pool_, mm_.level, out, lse, q, k, v, B, T, NH, NKV, HD);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                          const float* q, const float* k, const float* v, int B, int T, int NH, int NKV,
                          int HD) override {
    cpu::attention_backward(pool_, mm_.level, dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HD);
  }
  void swiglu_forward(float* h, const float* g, const float* u, int N, int H) override {
    cpu::swiglu_forward(pool_, h, g, u, N, H);
  }
  void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int N, int H) override {
    cpu::swiglu_backward(pool_, dg, du, dh, g, u, N, H);
  }
  void residual_forward(float* out, const float* a, const float* b, size_t n) override {
    cpu::residual_forward(pool_, out, a, b, n);
  }
  void residual_backward(float* da, float* db, const float* dout, size_t n) override {
    cpu::residual_backward(pool_, da, db, dout, n);
  }
  double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, const float* mask, int N,
                               int V) override {
    return cpu::cross_entropy_forward(pool_, losses, logits, targets, mask, N, V);
  }
  void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* mask,
                              float dloss, int N, int V) override {
    cpu::cross_entropy_backward(pool_, dlogits, logits, targets, mask, dloss, N, V);
  }
  void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int t, float grad_scale) override {
    cpu::adamw_step(pool_, param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
  }

 private:
  cpu::ThreadPool pool_;
  const cpu::MatmulKernels& mm_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) { return std::make_unique<CpuBackend>(threads); }

}  // namespace confidant
