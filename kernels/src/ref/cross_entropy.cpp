// Next-token cross-entropy over the vocabulary with a per-row weight (0 = ignored, like HF's ignore_index -100).
// Not averaged here: the caller picks the normaliser (dloss), so masking stays correct across micro-batches.
#include <cmath>

#include "confidant/ref_ops.h"

namespace confidant::ref {

// log(sum_v exp(l_v)) for one row, shifted by the max so large logits do not overflow.
static double logsumexp(const float* l, int V) {
    double mx = l[0];
    for (int v = 1; v < V; v++)
        if (l[v] > mx) mx = l[v];
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += std::exp(l[v] - mx);
    return mx + std::log(sum);
}

double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, const float* mask, int N,
                             int V) {
    // losses (N), logits (N,V), targets (N), mask (N)
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        if (mask[n] == 0.0f) {  // ignored row: its target may be out of range, so do not touch it
            losses[n] = 0.0f;
            continue;
        }
        const float* l = logits + (size_t)n * V;
        double loss = mask[n] * (logsumexp(l, V) - l[targets[n]]);
        losses[n] = (float)loss;
        total += loss;
    }
    return total;
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* mask,
                            float dloss, int N, int V) {
    // dlogits (N,V) +=, logits (N,V), targets (N), mask (N)
    for (int n = 0; n < N; n++) {
        if (mask[n] == 0.0f) continue;
        const float* l = logits + (size_t)n * V;
        float* dl = dlogits + (size_t)n * V;
        const double lse = logsumexp(l, V);
        const double w = (double)dloss * mask[n];
        for (int v = 0; v < V; v++) {
            double p = std::exp(l[v] - lse);
            dl[v] += (float)(w * (p - (v == targets[n] ? 1.0 : 0.0)));
        }
    }
}

}  // namespace confidant::ref
