// Cross-entropy: forward vs hand-computed log-softmax values, masked rows (zero and fractional weights, invalid
// targets on ignored rows), large-logit stability, and dlogits vs finite differences. Not testing label smoothing.
#include <cmath>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    // Hand-computed: logits (1, 2, 3) -> log-sum-exp = 3 + log(1 + e^-1 + e^-2) = 3.40760596444...
    {
        const float logits[6] = {1, 2, 3, 1, 2, 3};
        const int32_t targets[2] = {2, 0};
        const float mask[2] = {1.0f, 0.5f};
        float losses[2];
        double total = cross_entropy_forward(losses, logits, targets, mask, 2, 3);
        CHECK(std::fabs(losses[0] - 0.40760596f) < 1e-6f);
        CHECK(std::fabs(losses[1] - 0.5f * 2.40760596f) < 1e-6f);
        CHECK(std::fabs(total - (0.40760596444 + 0.5 * 2.40760596444)) < 1e-6);
    }
    // Large logits must not overflow (softmax is max-shifted): loss = log(1 + e^-1).
    {
        const float logits[2] = {1000.0f, 999.0f};
        const int32_t target = 0;
        const float mask = 1.0f;
        float loss, dl[2] = {0, 0};
        cross_entropy_forward(&loss, logits, &target, &mask, 1, 2);
        cross_entropy_backward(dl, logits, &target, &mask, 1.0f, 1, 2);
        CHECK(std::fabs(loss - 0.31326169f) < 1e-6f);
        CHECK(std::isfinite(dl[0]) && std::fabs(dl[0] + dl[1]) < 1e-6f);
    }

    const int N = 5, V = 9;
    ct::Vec logits = ct::rand_vec((size_t)N * V, 1, 3.0f), losses(N);
    const int32_t targets[N] = {4, -100, 0, 8, 123456};  // rows 1 and 4 are masked out; their targets are invalid
    const float mask[N] = {1.0f, 0.0f, 0.5f, 1.0f, 0.0f};
    const float dloss = 0.37f;

    double total = cross_entropy_forward(losses.data(), logits.data(), targets, mask, N, V);
    std::vector<double> want(N, 0.0);
    double want_total = 0.0;
    for (int n = 0; n < N; n++) {
        if (mask[n] == 0.0f) continue;
        double z = 0.0;
        for (int v = 0; v < V; v++) z += std::exp((double)logits[(size_t)n * V + v]);
        want[n] = -mask[n] * std::log(std::exp((double)logits[(size_t)n * V + targets[n]]) / z);
        want_total += want[n];
    }
    ct::expect_close("cross_entropy losses", losses, want, 1e-6, 1e-7);
    CHECK(std::fabs(total - want_total) < 1e-6);

    ct::Grad dlogits((size_t)N * V, 2);
    cross_entropy_backward(dlogits.data(), logits.data(), targets, mask, dloss, N, V);
    const ct::Vec d = dlogits.delta();
    bool untouched = true;  // masked rows receive no gradient at all
    for (int v = 0; v < V; v++) untouched &= d[(size_t)1 * V + v] == 0.0f && d[(size_t)4 * V + v] == 0.0f;
    CHECK(untouched);
    ct::expect_grad("cross_entropy dlogits", d, logits, [&] {
        return dloss * cross_entropy_forward(losses.data(), logits.data(), targets, mask, N, V);
    });
    return ct::finish("cross_entropy");
}
