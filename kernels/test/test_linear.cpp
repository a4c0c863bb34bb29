// Linear: forward (with and without bias) vs a direct triple loop in the HF W (OC,C) layout; dx vs finite differences.
// Not testing dW/dbias: base weights are frozen under LoRA, so the contract has no weight gradient.
#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const int N = 5, C = 12, OC = 7;
    ct::Vec x = ct::rand_vec((size_t)N * C, 1), W = ct::rand_vec((size_t)OC * C, 2), bias = ct::rand_vec(OC, 3);
    ct::Vec R = ct::rand_vec((size_t)N * OC, 4), out((size_t)N * OC), out_nb((size_t)N * OC);

    linear_forward(out.data(), x.data(), W.data(), bias.data(), N, C, OC);
    linear_forward(out_nb.data(), x.data(), W.data(), nullptr, N, C, OC);
    std::vector<double> want(out.size()), want_nb(out.size());
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int c = 0; c < C; c++) s += (double)x[(size_t)n * C + c] * W[(size_t)o * C + c];
            want_nb[(size_t)n * OC + o] = s;
            want[(size_t)n * OC + o] = s + bias[o];
        }
    ct::expect_close("linear forward (bias)", out, want, 1e-6, 1e-6);
    ct::expect_close("linear forward (no bias)", out_nb, want_nb, 1e-6, 1e-6);

    ct::Grad dx((size_t)N * C, 5);
    linear_backward_input(dx.data(), R.data(), W.data(), N, C, OC);
    ct::expect_grad("linear dx", dx.delta(), x, [&] {
        linear_forward(out.data(), x.data(), W.data(), bias.data(), N, C, OC);
        return ct::dot(out, R);
    });
    return ct::finish("linear");
}
