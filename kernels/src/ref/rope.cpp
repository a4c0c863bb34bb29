// Rotary position embedding, Hugging Face Llama "rotate-half" layout: dim i pairs with dim i + HD/2 (not 2i, 2i+1).
// Not for llama.cpp/llama2.c interleaved checkpoints (their Q/K rows must be permuted first). Frequency scaling
// (rope_scaling) is the caller's inv_freq table; this file only rotates.
#include <cmath>

#include "confidant/ref_ops.h"

namespace confidant::ref {

std::vector<float> rope_default_inv_freq(int HD, float theta) {
    std::vector<float> inv_freq(HD / 2);
    for (int i = 0; i < HD / 2; i++) inv_freq[i] = (float)(1.0 / std::pow((double)theta, 2.0 * i / HD));
    return inv_freq;
}

// Rotates every (i, i+HD/2) pair of every head by angle (pos0 + t) * inv_freq[i].
// sign = +1 applies R (forward), sign = -1 applies R^T (backward); accumulate selects += instead of =.
static void rope_apply(float* out, const float* in, int B, int T, int NH, int HD, int pos0, const float* inv_freq,
                       double sign, bool accumulate) {
    // out, in (B,T,NH,HD). Angles are computed in double (HF computes them in fp32; see the test notes).
    const int half = HD / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < half; i++) {
                double angle = (double)(pos0 + t) * (double)inv_freq[i];
                double cs = std::cos(angle), sn = sign * std::sin(angle);
                for (int h = 0; h < NH; h++) {
                    size_t base = (((size_t)b * T + t) * NH + h) * HD;
                    // Read both halves before writing so out == in works.
                    double x1 = in[base + i], x2 = in[base + i + half];
                    double y1 = x1 * cs - x2 * sn, y2 = x2 * cs + x1 * sn;
                    if (accumulate) {
                        out[base + i] += (float)y1;
                        out[base + i + half] += (float)y2;
                    } else {
                        out[base + i] = (float)y1;
                        out[base + i + half] = (float)y2;
                    }
                }
            }
}

void rope_forward(float* out, const float* in, int B, int T, int NH, int HD, int pos0, const float* inv_freq) {
    rope_apply(out, in, B, T, NH, HD, pos0, inv_freq, +1.0, false);
}

void rope_backward(float* din, const float* dout, int B, int T, int NH, int HD, int pos0, const float* inv_freq) {
    // RoPE is a rotation, so its Jacobian transpose is the rotation by the negated angle.
    rope_apply(din, dout, B, T, NH, HD, pos0, inv_freq, -1.0, true);
}

}  // namespace confidant::ref
