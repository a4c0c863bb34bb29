// SwiGLU gate of the Llama MLP: h = silu(gate_proj x) * (up_proj x), silu(g) = g * sigmoid(g) (HF act "silu").
// Not the projections themselves (see linear.cpp / lora.cpp); pointwise only, computed in double per element.
#include <cmath>

#include "confidant/ref_ops.h"

namespace confidant::ref {

// 1 / (1 + exp(-g)) overflows harmlessly to 0 for very negative g (exp -> inf), so no special casing is needed.
static double sigmoid(double g) { return 1.0 / (1.0 + std::exp(-g)); }

void swiglu_forward(float* h, const float* g, const float* u, int N, int H) {
    // h, g, u (N,H)
    const size_t n = (size_t)N * H;
    for (size_t i = 0; i < n; i++) h[i] = (float)(g[i] * sigmoid(g[i]) * u[i]);
}

void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int N, int H) {
    // dg, du (N,H) +=, dh, g, u (N,H).  d silu/dg = s * (1 + g * (1 - s)) with s = sigmoid(g).
    const size_t n = (size_t)N * H;
    for (size_t i = 0; i < n; i++) {
        double s = sigmoid(g[i]);
        dg[i] += (float)((double)dh[i] * u[i] * s * (1.0 + g[i] * (1.0 - s)));
        du[i] += (float)((double)dh[i] * g[i] * s);
    }
}

}  // namespace confidant::ref
