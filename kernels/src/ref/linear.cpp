// Dense layer out = x @ W^T + b with the Hugging Face nn.Linear weight layout W (OC, C).
// Not trainable here: the base weights are frozen under LoRA, so only the input gradient exists.
#include "confidant/ref_ops.h"

namespace confidant::ref {

void linear_forward(float* out, const float* x, const float* W, const float* bias, int N, int C, int OC) {
    // out (N,OC), x (N,C), W (OC,C), bias (OC) nullable
    for (int n = 0; n < N; n++) {
        const float* xn = x + (size_t)n * C;
        for (int o = 0; o < OC; o++) {
            const float* wo = W + (size_t)o * C;
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) acc += (double)xn[c] * wo[c];
            out[(size_t)n * OC + o] = (float)acc;
        }
    }
}

void linear_backward_input(float* dx, const float* dout, const float* W, int N, int C, int OC) {
    // dx (N,C) +=, dout (N,OC), W (OC,C):  dx[n,c] += sum_o dout[n,o] * W[o,c]
    for (int n = 0; n < N; n++) {
        const float* gn = dout + (size_t)n * OC;
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int o = 0; o < OC; o++) acc += (double)gn[o] * W[(size_t)o * C + c];
            dx[(size_t)n * C + c] += (float)acc;
        }
    }
}

}  // namespace confidant::ref
