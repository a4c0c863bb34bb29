// RoPE: identity at position 0, rotate-half values vs a complex-number formula, pos0 offset, in-place, and
// din vs finite differences. Not testing rope_scaling variants (Llama 3.1 "llama3" frequencies): out of contract.
#include <cmath>
#include <complex>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const int B = 2, T = 5, NH = 3, HD = 8, half = HD / 2, pos0 = 7;
    const float theta = 10000.0f;
    const size_t n = (size_t)B * T * NH * HD;
    ct::Vec x = ct::rand_vec(n, 1), R = ct::rand_vec(n, 2), out(n);
    auto at = [&](int b, int t, int h, int d) { return (((size_t)b * T + t) * NH + h) * HD + d; };

    // Position 0 rotates by angle 0: t = 0 rows come back unchanged.
    rope_forward(out.data(), x.data(), B, T, NH, HD, 0, theta);
    bool identity = true;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) identity &= out[at(b, 0, h, d)] == x[at(b, 0, h, d)];
    CHECK(identity);

    // (x_i, x_{i+HD/2}) as the complex number x_i + j x_{i+HD/2}, multiplied by e^{j angle}.
    rope_forward(out.data(), x.data(), B, T, NH, HD, pos0, theta);
    std::vector<double> want(n);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < half; i++) {
                    double angle = (pos0 + t) * std::exp(-(2.0 * i / HD) * std::log((double)theta));
                    std::complex<double> z(x[at(b, t, h, i)], x[at(b, t, h, i + half)]);
                    z *= std::polar(1.0, angle);
                    want[at(b, t, h, i)] = z.real();
                    want[at(b, t, h, i + half)] = z.imag();
                }
    ct::expect_close("rope forward vs complex rotation", out, want, 1e-5, 1e-6);

    // pos0 shifts positions: rope(x, pos0) equals rows pos0.. of rope over a longer, zero-padded-in-front sequence.
    {
        const int TL = pos0 + T;
        ct::Vec xl((size_t)B * TL * NH * HD, 0.0f), outl(xl.size()), tail(n);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int k = 0; k < NH * HD; k++)
                    xl[((size_t)b * TL + pos0 + t) * NH * HD + k] = x[((size_t)b * T + t) * NH * HD + k];
        rope_forward(outl.data(), xl.data(), B, TL, NH, HD, 0, theta);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int k = 0; k < NH * HD; k++)
                    tail[((size_t)b * T + t) * NH * HD + k] = outl[((size_t)b * TL + pos0 + t) * NH * HD + k];
        CHECK(tail == out);
    }

    // In-place (out == in) gives bit-identical results.
    ct::Vec inplace = x;
    rope_forward(inplace.data(), inplace.data(), B, T, NH, HD, pos0, theta);
    CHECK(inplace == out);

    ct::Grad din(n, 3);
    rope_backward(din.data(), R.data(), B, T, NH, HD, pos0, theta);
    ct::expect_grad("rope din (pos0=7)", din.delta(), x, [&] {
        rope_forward(out.data(), x.data(), B, T, NH, HD, pos0, theta);
        return ct::dot(out, R);
    });
    return ct::finish("rope");
}
