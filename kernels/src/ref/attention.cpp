// Causal scaled-dot-product self-attention with grouped-query heads (HF repeat_kv semantics), materialising att.
// Not flash/online-softmax and no KV cache: queries and keys share positions 0..T-1 of the same sequence.
#include <cmath>
#include <vector>

#include "confidant/ref_ops.h"

namespace confidant::ref {

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int B, int T, int NH,
                       int NKV, int HD) {
    // out, q (B,T,NH,HD); k, v (B,T,NKV,HD); att (B,NH,T,T), zero above the diagonal. NH % NKV == 0.
    const int group = NH / NKV;  // HF repeat_kv: query head h reads kv head h / group
    const double scale = 1.0 / std::sqrt((double)HD);
    std::vector<double> p(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const int kh = h / group;
            for (int t = 0; t < T; t++) {
                const float* qt = q + (((size_t)b * T + t) * NH + h) * HD;
                // Causal mask: only keys s <= t exist; softmax is shifted by the row max for stability.
                double mx = -INFINITY;
                for (int s = 0; s <= t; s++) {
                    const float* ks = k + (((size_t)b * T + s) * NKV + kh) * HD;
                    double dot = 0.0;
                    for (int d = 0; d < HD; d++) dot += (double)qt[d] * ks[d];
                    p[s] = dot * scale;
                    if (p[s] > mx) mx = p[s];
                }
                double sum = 0.0;
                for (int s = 0; s <= t; s++) sum += (p[s] = std::exp(p[s] - mx));
                float* arow = att + (((size_t)b * NH + h) * T + t) * T;
                for (int s = 0; s < T; s++) arow[s] = s <= t ? (float)(p[s] / sum) : 0.0f;
                float* ot = out + (((size_t)b * T + t) * NH + h) * HD;
                for (int d = 0; d < HD; d++) {
                    double acc = 0.0;
                    for (int s = 0; s <= t; s++) acc += p[s] / sum * v[(((size_t)b * T + s) * NKV + kh) * HD + d];
                    ot[d] = (float)acc;
                }
            }
        }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int B, int T, int NH, int NKV, int HD) {
    // dq (B,T,NH,HD) +=; dk, dv (B,T,NKV,HD) += (summed over the query heads of each group); dout like q.
    const int group = NH / NKV;
    const double scale = 1.0 / std::sqrt((double)HD);
    std::vector<double> dp(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const int kh = h / group;
            for (int t = 0; t < T; t++) {
                const float* arow = att + (((size_t)b * NH + h) * T + t) * T;
                const float* gt = dout + (((size_t)b * T + t) * NH + h) * HD;
                const float* qt = q + (((size_t)b * T + t) * NH + h) * HD;
                // dp[s] = dout_t . v_s ; dv_s += p[s] * dout_t
                double pdp = 0.0;
                for (int s = 0; s <= t; s++) {
                    const float* vs = v + (((size_t)b * T + s) * NKV + kh) * HD;
                    float* dvs = dv + (((size_t)b * T + s) * NKV + kh) * HD;
                    double acc = 0.0;
                    for (int d = 0; d < HD; d++) {
                        acc += (double)gt[d] * vs[d];
                        dvs[d] += (float)(arow[s] * (double)gt[d]);
                    }
                    dp[s] = acc;
                    pdp += arow[s] * acc;
                }
                // Softmax backward: dscore[s] = p[s] * (dp[s] - sum_j p[j] dp[j]); score = scale * q_t . k_s.
                float* dqt = dq + (((size_t)b * T + t) * NH + h) * HD;
                for (int s = 0; s <= t; s++) {
                    double ds = arow[s] * (dp[s] - pdp) * scale;
                    const float* ks = k + (((size_t)b * T + s) * NKV + kh) * HD;
                    float* dks = dk + (((size_t)b * T + s) * NKV + kh) * HD;
                    for (int d = 0; d < HD; d++) {
                        dqt[d] += (float)(ds * ks[d]);
                        dks[d] += (float)(ds * qt[d]);
                    }
                }
            }
        }
}

}  // namespace confidant::ref
