// Shared parts of the backend interface: op names and the unfused defaults of linear_lora_forward and
// linear_lowrank_forward.
#include "confidant/backend.h"

#include <vector>

namespace confidant {

const char* op_name(Op op) {
  switch (op) {
    case Op::Embedding: return "embedding";
    case Op::RmsNorm: return "rmsnorm";
    case Op::Linear: return "linear";
    case Op::LinearBackward: return "linear_backward";
    case Op::Lora: return "lora";
    case Op::Rope: return "rope";
    case Op::Attention: return "attention";
    case Op::SwiGlu: return "swiglu";
    case Op::Residual: return "residual";
    case Op::CrossEntropy: return "cross_entropy";
    case Op::AdamW: return "adamw";
    case Op::kCount: break;
  }
  return "?";
}

void Backend::linear_lora_forward(float* out, float* xa, const float* x, const WeightView& W, const float* bias,
                                  const float* A, const float* B, int N, int C, int R, int OC, float scale) {
  linear_forward(out, x, W, bias, N, C, OC);
  if (A) lora_forward(out, xa, x, A, B, N, C, R, OC, scale);
}

void Backend::linear_lowrank_forward(float* out, const float* x, const WeightView& W, const float* bias,
                                     const float* xl, const float* L, int N, int C, int K, int OC) {
  linear_forward(out, x, W, bias, N, C, OC);
  if (K <= 0) return;
  // lora_forward with A = I (K,K): its xa is xl itself (products by 1 and sums of zeros are exact).
  std::vector<float> identity(size_t(K) * K, 0.0f), xa(size_t(N) * K);
  for (int k = 0; k < K; ++k) identity[size_t(k) * K + k] = 1.0f;
  lora_forward(out, xa.data(), xl, identity.data(), L, N, K, K, OC, 1.0f);
  synchronize();
}

}  // namespace confidant
