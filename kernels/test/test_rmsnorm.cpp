// RMSNorm: forward and rstd vs a direct formula; dx and dw vs finite differences; dw = nullptr skips dw only.
// Not testing eps-dominated inputs (x ~ 0) beyond what random data covers.
#include <cmath>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const int N = 4, C = 16;
    const float eps = 1e-5f;
    ct::Vec x = ct::rand_vec((size_t)N * C, 1, 2.0f), w = ct::rand_vec(C, 2), R = ct::rand_vec((size_t)N * C, 3);
    ct::Vec out((size_t)N * C), rstd(N);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);

    std::vector<double> want_out(out.size()), want_rstd(N);
    for (int n = 0; n < N; n++) {
        double ms = 0.0;
        for (int c = 0; c < C; c++) ms += std::pow(x[(size_t)n * C + c], 2) / C;
        want_rstd[n] = 1.0 / std::sqrt(ms + eps);
        for (int c = 0; c < C; c++) want_out[(size_t)n * C + c] = x[(size_t)n * C + c] * want_rstd[n] * w[c];
    }
    ct::expect_close("rmsnorm forward", out, want_out, 1e-6, 1e-6);
    ct::expect_close("rmsnorm rstd", rstd, want_rstd, 1e-6, 1e-6);

    ct::Grad dx((size_t)N * C, 4), dw(C, 5);
    rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
    auto loss = [&] {
        rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
        return ct::dot(out, R);
    };
    ct::expect_grad("rmsnorm dx", dx.delta(), x, loss);
    ct::expect_grad("rmsnorm dw", dw.delta(), w, loss);

    ct::Grad dx2((size_t)N * C, 4);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    rmsnorm_backward(dx2.data(), nullptr, R.data(), x.data(), w.data(), rstd.data(), N, C);
    CHECK(dx2.buf == dx.buf);
    return ct::finish("rmsnorm");
}
