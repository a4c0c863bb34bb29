// RoPE: the default frequency table, identity at position 0, rotate-half values vs a complex-number formula (plain
// and with a Llama 3 "llama3"-scaled table), pos0 offset, in-place, and din vs finite differences.
#include <cmath>
#include <complex>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

namespace {

// transformers' _compute_llama3_parameters, written out in double: wavelengths above original_max / low_freq_factor
// are divided by factor, those below original_max / high_freq_factor kept, the band between interpolated.
std::vector<float> llama3_inv_freq(int HD, double theta, double factor, double low, double high, double original) {
    std::vector<float> out(HD / 2);
    for (int i = 0; i < HD / 2; i++) {
        const double f = std::pow(theta, -2.0 * i / HD), wavelen = 2 * M_PI / f;
        double g = f;
        if (wavelen > original / low) {
            g = f / factor;
        } else if (wavelen >= original / high) {
            const double smooth = (original / wavelen - low) / (high - low);
            g = (1 - smooth) * f / factor + smooth * f;
        }
        out[i] = (float)g;
    }
    return out;
}

}  // namespace

int main() {
    const int B = 2, T = 5, NH = 3, HD = 8, half = HD / 2, pos0 = 7;
    const float theta = 10000.0f;
    const size_t n = (size_t)B * T * NH * HD;
    ct::Vec x = ct::rand_vec(n, 1), R = ct::rand_vec(n, 2), out(n);
    auto at = [&](int b, int t, int h, int d) { return (((size_t)b * T + t) * NH + h) * HD + d; };

    const std::vector<float> freqs = rope_default_inv_freq(HD, theta);
    for (int i = 0; i < half; i++) {
        const double want = std::exp(-(2.0 * i / HD) * std::log((double)theta));
        CHECK(std::fabs(freqs[i] - want) <= 1e-7 * want);  // want rounded to f32
    }

    // Position 0 rotates by angle 0: t = 0 rows come back unchanged.
    rope_forward(out.data(), x.data(), B, T, NH, HD, 0, freqs.data());
    bool identity = true;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) identity &= out[at(b, 0, h, d)] == x[at(b, 0, h, d)];
    CHECK(identity);

    // (x_i, x_{i+HD/2}) as the complex number x_i + j x_{i+HD/2}, multiplied by e^{j (pos0 + t) inv_freq[i]}.
    auto complex_rotation = [&](const std::vector<float>& inv_freq, int p0) {
        std::vector<double> want(n);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int h = 0; h < NH; h++)
                    for (int i = 0; i < half; i++) {
                        std::complex<double> z(x[at(b, t, h, i)], x[at(b, t, h, i + half)]);
                        z *= std::polar(1.0, (p0 + t) * (double)inv_freq[i]);
                        want[at(b, t, h, i)] = z.real();
                        want[at(b, t, h, i + half)] = z.imag();
                    }
        return want;
    };
    rope_forward(out.data(), x.data(), B, T, NH, HD, pos0, freqs.data());
    ct::expect_close("rope forward vs complex rotation", out, complex_rotation(freqs, pos0), 1e-5, 1e-6);

    // Llama 3.1's rope_scaling (factor 8, low 1, high 4, original 8192) at theta 500000 and positions past 8192:
    // the low-frequency pairs rotate 8x slower, so the result differs from the unscaled table's.
    {
        const int HD3 = 8, p3 = 9000;
        const std::vector<float> scaled = llama3_inv_freq(HD3, 500000.0, 8.0, 1.0, 4.0, 8192.0);
        const std::vector<float> plain = rope_default_inv_freq(HD3, 500000.0f);
        CHECK(scaled[0] == plain[0] && scaled[half - 1] < plain[half - 1] / 7.9f);
        ct::Vec scaled_out(n), plain_out(n);
        rope_forward(scaled_out.data(), x.data(), B, T, NH, HD3, p3, scaled.data());
        rope_forward(plain_out.data(), x.data(), B, T, NH, HD3, p3, plain.data());
        ct::expect_close("rope forward, llama3 table, vs complex rotation", scaled_out, complex_rotation(scaled, p3),
                         1e-5, 1e-6);
        CHECK(!(scaled_out == plain_out));
    }

    // pos0 shifts positions: rope(x, pos0) equals rows pos0.. of rope over a longer, zero-padded-in-front sequence.
    {
        const int TL = pos0 + T;
        ct::Vec xl((size_t)B * TL * NH * HD, 0.0f), outl(xl.size()), tail(n);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int k = 0; k < NH * HD; k++)
                    xl[((size_t)b * TL + pos0 + t) * NH * HD + k] = x[((size_t)b * T + t) * NH * HD + k];
        rope_forward(outl.data(), xl.data(), B, TL, NH, HD, 0, freqs.data());
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int k = 0; k < NH * HD; k++)
                    tail[((size_t)b * T + t) * NH * HD + k] = outl[((size_t)b * TL + pos0 + t) * NH * HD + k];
        CHECK(tail == out);
    }

    // In-place (out == in) gives bit-identical results.
    ct::Vec inplace = x;
    rope_forward(inplace.data(), inplace.data(), B, T, NH, HD, pos0, freqs.data());
    CHECK(inplace == out);

    ct::Grad din(n, 3);
    rope_backward(din.data(), R.data(), B, T, NH, HD, pos0, freqs.data());
    ct::expect_grad("rope din (pos0=7)", din.delta(), x, [&] {
        rope_forward(out.data(), x.data(), B, T, NH, HD, pos0, freqs.data());
        return ct::dot(out, R);
    });
    return ct::finish("rope");
}
