// RMSNorm as in Hugging Face LlamaRMSNorm: y = x * rsqrt(mean(x^2) + eps) * w (no mean subtraction, no bias).
// Not fused with the following matmul; statistics are accumulated in double and rstd is stored as fp32.
#include <cmath>

#include "confidant/ref_ops.h"

namespace confidant::ref {

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) {
    // out (N,C), rstd (N), x (N,C), w (C)
    for (int n = 0; n < N; n++) {
        const float* xn = x + (size_t)n * C;
        float* on = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xn[c] * xn[c];
        double r = 1.0 / std::sqrt(ss / C + eps);
        rstd[n] = (float)r;
        // HF multiplies the normalized fp32 activation by the weight; same order here.
        for (int c = 0; c < C; c++) on[c] = (float)(xn[c] * r * w[c]);
    }
}

void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int N, int C) {
    // dx (N,C) +=, dw (C) += (nullable), dout (N,C), x (N,C), w (C), rstd (N)
    // With xhat = x * r and r = (mean(x^2)+eps)^(-1/2):  dr/dx_j = -r^3 x_j / C, so
    //   dx_j = r * (w_j dout_j - x_j * r^2 * mean_c(w_c dout_c x_c)).
    for (int n = 0; n < N; n++) {
        const float* xn = x + (size_t)n * C;
        const float* gn = dout + (size_t)n * C;
        float* dxn = dx + (size_t)n * C;
        double r = rstd[n];
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * gn[c] * xn[c];
        double k = r * r * dot / C;
        for (int c = 0; c < C; c++) dxn[c] += (float)(r * ((double)w[c] * gn[c] - xn[c] * k));
        if (dw)
            for (int c = 0; c < C; c++) dw[c] += (float)((double)gn[c] * xn[c] * r);
    }
}

}  // namespace confidant::ref
