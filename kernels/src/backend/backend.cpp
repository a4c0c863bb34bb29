// Shared parts of the backend interface: op names and the unfused default of linear_lora_forward.
#include "confidant/backend.h"

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

}  // namespace confidant
