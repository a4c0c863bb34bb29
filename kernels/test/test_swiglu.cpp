// SwiGLU: forward vs g * sigmoid(g) * u, finite outputs for saturated gates, dg and du vs finite differences.
// Not testing the surrounding MLP projections.
#include <cmath>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const int N = 3, H = 11;
    const size_t n = (size_t)N * H;
    ct::Vec g = ct::rand_vec(n, 1, 4.0f), u = ct::rand_vec(n, 2), R = ct::rand_vec(n, 3), h(n);

    swiglu_forward(h.data(), g.data(), u.data(), N, H);
    std::vector<double> want(n);
    for (size_t i = 0; i < n; i++) want[i] = g[i] / (1.0 + std::exp(-(double)g[i])) * u[i];
    ct::expect_close("swiglu forward", h, want, 1e-6, 1e-7);

    // Saturated gates: silu(-100) ~ 0 (exp overflow path), silu(100) = 100; gradients stay finite.
    {
        const float gs[2] = {-100.0f, 100.0f}, us[2] = {1.0f, 1.0f}, dh[2] = {1.0f, 1.0f};
        float hs[2], dgs[2] = {0, 0}, dus[2] = {0, 0};
        swiglu_forward(hs, gs, us, 1, 2);
        swiglu_backward(dgs, dus, dh, gs, us, 1, 2);
        CHECK(std::fabs(hs[0]) < 1e-30f && hs[1] == 100.0f);
        CHECK(std::isfinite(dgs[0]) && std::isfinite(dus[0]) && std::fabs(dgs[1] - 1.0f) < 1e-6f);
    }

    ct::Grad dg(n, 4), du(n, 5);
    swiglu_backward(dg.data(), du.data(), R.data(), g.data(), u.data(), N, H);
    auto loss = [&] {
        swiglu_forward(h.data(), g.data(), u.data(), N, H);
        return ct::dot(h, R);
    };
    ct::expect_grad("swiglu dg", dg.delta(), g, loss);
    ct::expect_grad("swiglu du", du.delta(), u, loss);
    return ct::finish("swiglu");
}
