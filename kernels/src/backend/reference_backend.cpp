// The reference ops (ref_ops.h) behind the Backend interface. Weights of any format are dequantised one row at a
// time with the scalar reference dequantiser, so this backend is the spec for the quantised paths too. Attention
// keeps no probabilities: backward recomputes them with ref::attention_forward.
#include <cmath>
#include <vector>

#include "confidant/backend.h"
#include "confidant/ref_ops.h"

namespace confidant {

namespace {

// The whole matrix as f32 (reference only: the fast backends never make this copy).
std::vector<float> dequantize_all(const WeightView& W) {
  std::vector<float> w(size_t(W.rows) * W.cols);
  for (int r = 0; r < W.rows; ++r) dequantize_row(W, r, w.data() + size_t(r) * W.cols);
  return w;
}

class ReferenceBackend final : public Backend {
 public:
  BackendInfo info() const override { return {"reference", "naive fp32 (double accumulation)", 1}; }
  bool supports(Op, WDType) const override { return true; }

  void embedding_forward(float* out, const int32_t* tokens, const WeightView& wte, int N, int C) override {
    for (int n = 0; n < N; ++n) dequantize_row(wte, tokens[n], out + size_t(n) * C);
  }
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) override {
    ref::embedding_backward(dwte, dout, tokens, N, C);
  }
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) override {
    ref::rmsnorm_forward(out, rstd, x, w, N, C, eps);
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                        int N, int C) override {
    ref::rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
  }
  void linear_forward(float* out, const float* x, const WeightView& W, const float* bias, int N, int C,
                      int OC) override {
    const std::vector<float> w = dequantize_all(W);
    ref::linear_forward(out, x, w.data(), bias, N, C, OC);
  }
  void linear_backward_input(float* dx, const float* dout, const WeightView& W, int N, int C, int OC) override {
    const std::vector<float> w = dequantize_all(W);
    ref::linear_backward_input(dx, dout, w.data(), N, C, OC);
  }
  void lora_forward(float* out, float* xa, const float* x, const float* A, const float* B, int N, int C, int R, int OC,
                    float scale) override {
    ref::lora_forward(out, xa, x, A, B, N, C, R, OC, scale);
  }
  void lora_backward(float* dx, float* dA, float* dB, const float* dout, const float* x, const float* xa,
                     const float* A, const float* B, int N, int C, int R, int OC, float scale) override {
    ref::lora_backward(dx, dA, dB, dout, x, xa, A, B, N, C, R, OC, scale);
  }
  void rope_forward(float* out, const float* in, int B, int T, int NH, int HD, int pos0, const float* inv_freq) override {
    ref::rope_forward(out, in, B, T, NH, HD, pos0, inv_freq);
  }
  void rope_backward(float* din, const float* dout, int B, int T, int NH, int HD, int pos0,
                     const float* inv_freq) override {
    ref::rope_backward(din, dout, B, T, NH, HD, pos0, inv_freq);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T, int NH,
                         int NKV, int HD) override {
    std::vector<float> att(size_t(B) * NH * T * T);
    ref::attention_forward(out, att.data(), q, k, v, B, T, NH, NKV, HD);
    if (lse) attention_lse(lse, q, k, B, T, NH, NKV, HD);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float*, const float*,
                          const float* q, const float* k, const float* v, int B, int T, int NH, int NKV,
                          int HD) override {
    std::vector<float> att(size_t(B) * NH * T * T), out(size_t(B) * T * NH * HD);
    ref::attention_forward(out.data(), att.data(), q, k, v, B, T, NH, NKV, HD);
    ref::attention_backward(dq, dk, dv, dout, att.data(), q, k, v, B, T, NH, NKV, HD);
  }
  void swiglu_forward(float* h, const float* g, const float* u, int N, int H) override {
    ref::swiglu_forward(h, g, u, N, H);
  }
  void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int N, int H) override {
    ref::swiglu_backward(dg, du, dh, g, u, N, H);
  }
  void residual_forward(float* out, const float* a, const float* b, size_t n) override {
    ref::residual_forward(out, a, b, n);
  }
  void residual_backward(float* da, float* db, const float* dout, size_t n) override {
    ref::residual_backward(da, db, dout, n);
  }
  double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, const float* mask, int N,
                               int V) override {
    return ref::cross_entropy_forward(losses, logits, targets, mask, N, V);
  }
  void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* mask,
                              float dloss, int N, int V) override {
    ref::cross_entropy_backward(dlogits, logits, targets, mask, dloss, N, V);
  }
  void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int t, float grad_scale) override {
    ref::adamw_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
  }

 private:
  // lse[b,h,t] = log sum_{s<=t} exp(q_t . k_s / sqrt(HD)), in double.
  static void attention_lse(float* lse, const float* q, const float* k, int B, int T, int NH, int NKV, int HD) {
    const int group = NH / NKV;
    const double scale = 1.0 / std::sqrt(double(HD));
    std::vector<double> p(T);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h)
        for (int t = 0; t < T; ++t) {
          const float* qt = q + ((size_t(b) * T + t) * NH + h) * HD;
          double mx = -INFINITY;
          for (int s = 0; s <= t; ++s) {
            const float* ks = k + ((size_t(b) * T + s) * NKV + h / group) * HD;
            double dot = 0;
            for (int d = 0; d < HD; ++d) dot += double(qt[d]) * ks[d];
            p[s] = dot * scale;
            mx = std::max(mx, p[s]);
          }
          double sum = 0;
          for (int s = 0; s <= t; ++s) sum += std::exp(p[s] - mx);
          lse[(size_t(b) * NH + h) * T + t] = float(mx + std::log(sum));
        }
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace confidant
