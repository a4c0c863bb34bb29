// LoRA: forward adds scale * x A^T B^T onto out and saves xa; dx, dA, dB vs finite differences; dA = nullptr.
// Not testing the base linear (test_linear) or rank-0 adapters.
#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const int N = 4, C = 10, R = 3, OC = 6;
    const float scale = 16.0f / R;  // alpha / r
    ct::Vec x = ct::rand_vec((size_t)N * C, 1), A = ct::rand_vec((size_t)R * C, 2, 0.3f);
    ct::Vec B = ct::rand_vec((size_t)OC * R, 3, 0.3f), Rw = ct::rand_vec((size_t)N * OC, 4);
    const ct::Vec base = ct::rand_vec((size_t)N * OC, 5);  // stands in for the frozen linear's output
    ct::Vec out = base, xa((size_t)N * R);

    lora_forward(out.data(), xa.data(), x.data(), A.data(), B.data(), N, C, R, OC, scale);
    std::vector<double> want_xa(xa.size()), want_out(out.size());
    for (int n = 0; n < N; n++) {
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) want_xa[(size_t)n * R + r] += (double)x[(size_t)n * C + c] * A[(size_t)r * C + c];
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int r = 0; r < R; r++) s += want_xa[(size_t)n * R + r] * B[(size_t)o * R + r];
            want_out[(size_t)n * OC + o] = base[(size_t)n * OC + o] + scale * s;
        }
    }
    ct::expect_close("lora xa", xa, want_xa, 1e-6, 1e-6);
    ct::expect_close("lora forward (+= onto out)", out, want_out, 1e-6, 1e-6);

    ct::Grad dx((size_t)N * C, 6), dA((size_t)R * C, 7), dB((size_t)OC * R, 8);
    lora_backward(dx.data(), dA.data(), dB.data(), Rw.data(), x.data(), xa.data(), A.data(), B.data(), N, C, R, OC,
                  scale);
    auto loss = [&] {
        out = base;
        lora_forward(out.data(), xa.data(), x.data(), A.data(), B.data(), N, C, R, OC, scale);
        return ct::dot(out, Rw);
    };
    ct::expect_grad("lora dx", dx.delta(), x, loss);
    ct::expect_grad("lora dA", dA.delta(), A, loss);
    ct::expect_grad("lora dB", dB.delta(), B, loss);

    // Frozen A (LoRA-FA): dA = nullptr must leave dx and dB bit-identical.
    ct::Grad dx2((size_t)N * C, 6), dB2((size_t)OC * R, 8);
    loss();  // restores xa for the unperturbed inputs
    lora_backward(dx2.data(), nullptr, dB2.data(), Rw.data(), x.data(), xa.data(), A.data(), B.data(), N, C, R, OC,
                  scale);
    CHECK(dx2.buf == dx.buf);
    CHECK(dB2.buf == dB.buf);
    return ct::finish("lora");
}
