// LoRA low-rank branch (PEFT convention): out += scale * (x @ A^T) @ B^T with A (R,C), B (OC,R), scale = alpha/r.
// Not the base projection (see linear.cpp) and no dropout; xa = x @ A^T is kept so backward needs no recompute.
#include <vector>

#include "confidant/ref_ops.h"

namespace confidant::ref {

void lora_forward(float* out, float* xa, const float* x, const float* A, const float* B, int N, int C, int R, int OC,
                  float scale) {
    // out (N,OC) +=, xa (N,R) written, x (N,C), A (R,C), B (OC,R)
    for (int n = 0; n < N; n++) {
        const float* xn = x + (size_t)n * C;
        float* xan = xa + (size_t)n * R;
        for (int r = 0; r < R; r++) {
            double acc = 0.0;
            for (int c = 0; c < C; c++) acc += (double)xn[c] * A[(size_t)r * C + c];
            xan[r] = (float)acc;
        }
        for (int o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int r = 0; r < R; r++) acc += (double)xan[r] * B[(size_t)o * R + r];
            out[(size_t)n * OC + o] += (float)(scale * acc);
        }
    }
}

void lora_backward(float* dx, float* dA, float* dB, const float* dout, const float* x, const float* xa, const float* A,
                   const float* B, int N, int C, int R, int OC, float scale) {
    // dx (N,C) +=, dA (R,C) += nullable, dB (OC,R) +=, dout (N,OC), x (N,C), xa (N,R), A (R,C), B (OC,R)
    // dxa (N,R) = scale * dout @ B is the gradient flowing into the rank-R bottleneck.
    std::vector<double> dxa((size_t)N * R, 0.0);
    for (int n = 0; n < N; n++)
        for (int r = 0; r < R; r++) {
            double acc = 0.0;
            for (int o = 0; o < OC; o++) acc += (double)dout[(size_t)n * OC + o] * B[(size_t)o * R + r];
            dxa[(size_t)n * R + r] = scale * acc;
        }
    // dB[o,r] += scale * sum_n dout[n,o] * xa[n,r]
    for (int o = 0; o < OC; o++)
        for (int r = 0; r < R; r++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += (double)dout[(size_t)n * OC + o] * xa[(size_t)n * R + r];
            dB[(size_t)o * R + r] += (float)(scale * acc);
        }
    // dA[r,c] += sum_n dxa[n,r] * x[n,c]  (skipped when A is frozen, e.g. LoRA-FA)
    if (dA)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int n = 0; n < N; n++) acc += dxa[(size_t)n * R + r] * x[(size_t)n * C + c];
                dA[(size_t)r * C + c] += (float)acc;
            }
    // dx[n,c] += sum_r dxa[n,r] * A[r,c]
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int r = 0; r < R; r++) acc += dxa[(size_t)n * R + r] * A[(size_t)r * C + c];
            dx[(size_t)n * C + c] += (float)acc;
        }
}

}  // namespace confidant::ref
