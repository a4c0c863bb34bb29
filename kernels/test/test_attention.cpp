// Attention: forward vs an independent softmax formula, causal masking, GQA == MHA on repeated kv heads, T = 1,
// and dq/dk/dv vs finite differences for NH=4,NKV=2 and NH=NKV. Not testing T above a few positions (naive O(T^2)).
#include <cmath>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

namespace {

const int B = 2, T = 5, HD = 8;

struct Inputs {
    int NH, NKV;
    ct::Vec q, k, v;
    Inputs(int nh, int nkv, uint32_t seed)
        : NH(nh), NKV(nkv), q(ct::rand_vec((size_t)B * T * nh * HD, seed)),
          k(ct::rand_vec((size_t)B * T * nkv * HD, seed + 1)), v(ct::rand_vec((size_t)B * T * nkv * HD, seed + 2)) {}
};

// HF repeat_kv: kv head j is shared by query heads j*group .. j*group+group-1.
ct::Vec repeat_kv(const ct::Vec& kv, int NKV, int NH) {
    const int group = NH / NKV;
    ct::Vec r((size_t)B * T * NH * HD);
    for (int bt = 0; bt < B * T; bt++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) r[((size_t)bt * NH + h) * HD + d] = kv[((size_t)bt * NKV + h / group) * HD + d];
    return r;
}

// out[t] = sum_{s<=t} softmax_s(q_t.k_s / sqrt(HD)) v_s, written without max-shifting or shared code.
std::vector<double> naive_attention(const Inputs& in) {
    std::vector<double> out(in.q.size());
    for (int b = 0; b < B; b++)
        for (int h = 0; h < in.NH; h++) {
            const int kh = h * in.NKV / in.NH;
            for (int t = 0; t < T; t++) {
                std::vector<double> e(t + 1);
                double z = 0.0;
                for (int s = 0; s <= t; s++) {
                    double sc = 0.0;
                    for (int d = 0; d < HD; d++)
                        sc += (double)in.q[(((size_t)b * T + t) * in.NH + h) * HD + d] *
                              in.k[(((size_t)b * T + s) * in.NKV + kh) * HD + d];
                    z += e[s] = std::exp(sc / std::sqrt((double)HD));
                }
                for (int s = 0; s <= t; s++)
                    for (int d = 0; d < HD; d++)
                        out[(((size_t)b * T + t) * in.NH + h) * HD + d] +=
                            e[s] / z * in.v[(((size_t)b * T + s) * in.NKV + kh) * HD + d];
            }
        }
    return out;
}

void check_config(int NH, int NKV) {
    std::printf(" NH=%d NKV=%d\n", NH, NKV);
    Inputs in(NH, NKV, 10 * NH + NKV);
    ct::Vec out(in.q.size()), att((size_t)B * NH * T * T), R = ct::rand_vec(in.q.size(), 99);
    auto forward = [&] { attention_forward(out.data(), att.data(), in.q.data(), in.k.data(), in.v.data(), B, T, NH, NKV, HD); };
    forward();
    ct::expect_close("attention forward vs naive", out, naive_attention(in), 1e-5, 1e-6);

    // att rows are probabilities over s <= t and exactly 0 for future positions.
    bool masked = true, normalised = true;
    for (int row = 0; row < B * NH * T; row++) {
        const int t = row % T;
        double sum = 0.0;
        for (int s = 0; s < T; s++) {
            sum += att[(size_t)row * T + s];
            if (s > t) masked &= att[(size_t)row * T + s] == 0.0f;
        }
        normalised &= std::fabs(sum - 1.0) < 1e-6;
    }
    CHECK(masked);
    CHECK(normalised);

    // Changing q, k, v at the last position must not change any earlier output.
    {
        Inputs changed = in;
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < NH * HD; i++) changed.q[((size_t)b * T + T - 1) * NH * HD + i] += 1.0f;
            for (int i = 0; i < NKV * HD; i++) {
                changed.k[((size_t)b * T + T - 1) * NKV * HD + i] -= 2.0f;
                changed.v[((size_t)b * T + T - 1) * NKV * HD + i] += 3.0f;
            }
        }
        ct::Vec out2(out.size()), att2(att.size());
        attention_forward(out2.data(), att2.data(), changed.q.data(), changed.k.data(), changed.v.data(), B, T, NH, NKV, HD);
        bool causal = true, last_changed = false;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int i = 0; i < NH * HD; i++) {
                    size_t j = ((size_t)b * T + t) * NH * HD + i;
                    if (t < T - 1) causal &= out2[j] == out[j];
                    else last_changed |= out2[j] != out[j];
                }
        CHECK(causal);
        CHECK(last_changed);
    }

    ct::Grad dq(in.q.size(), 1), dk(in.k.size(), 2), dv(in.v.size(), 3);
    attention_backward(dq.data(), dk.data(), dv.data(), R.data(), att.data(), in.q.data(), in.k.data(), in.v.data(), B,
                       T, NH, NKV, HD);
    auto loss = [&] {
        forward();
        return ct::dot(out, R);
    };
    ct::expect_grad("attention dq", dq.delta(), in.q, loss);
    ct::expect_grad("attention dk", dk.delta(), in.k, loss);
    ct::expect_grad("attention dv", dv.delta(), in.v, loss);
}

// GQA must equal plain MHA on repeat_kv'd k, v; its dk, dv are the per-group sums of the MHA ones.
void check_gqa_equals_repeat_kv() {
    const int NH = 4, NKV = 2, group = NH / NKV;
    Inputs g(NH, NKV, 7);
    Inputs m(NH, NH, 7);
    m.q = g.q, m.k = repeat_kv(g.k, NKV, NH), m.v = repeat_kv(g.v, NKV, NH);
    ct::Vec out_g(g.q.size()), out_m(g.q.size()), att_g((size_t)B * NH * T * T), att_m(att_g.size());
    attention_forward(out_g.data(), att_g.data(), g.q.data(), g.k.data(), g.v.data(), B, T, NH, NKV, HD);
    attention_forward(out_m.data(), att_m.data(), m.q.data(), m.k.data(), m.v.data(), B, T, NH, NH, HD);
    CHECK(out_g == out_m);

    const ct::Vec dout = ct::rand_vec(g.q.size(), 8);
    ct::Vec dq_g(g.q.size()), dk_g(g.k.size()), dv_g(g.v.size()), dq_m(g.q.size()), dk_m(m.k.size()), dv_m(m.v.size());
    attention_backward(dq_g.data(), dk_g.data(), dv_g.data(), dout.data(), att_g.data(), g.q.data(), g.k.data(),
                       g.v.data(), B, T, NH, NKV, HD);
    attention_backward(dq_m.data(), dk_m.data(), dv_m.data(), dout.data(), att_m.data(), m.q.data(), m.k.data(),
                       m.v.data(), B, T, NH, NH, HD);
    std::vector<double> dk_sum(dk_g.size()), dv_sum(dv_g.size());
    for (int bt = 0; bt < B * T; bt++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) {
                dk_sum[((size_t)bt * NKV + h / group) * HD + d] += dk_m[((size_t)bt * NH + h) * HD + d];
                dv_sum[((size_t)bt * NKV + h / group) * HD + d] += dv_m[((size_t)bt * NH + h) * HD + d];
            }
    ct::expect_close("GQA dq == MHA dq", dq_g, dq_m, 1e-6, 1e-7);
    ct::expect_close("GQA dk == group-sum of MHA dk", dk_g, dk_sum, 1e-5, 1e-6);
    ct::expect_close("GQA dv == group-sum of MHA dv", dv_g, dv_sum, 1e-5, 1e-6);
}

// With one position the softmax is [1], so each query head returns its kv head's v exactly.
void check_single_position() {
    const int NH = 4, NKV = 2;
    ct::Vec q = ct::rand_vec((size_t)B * NH * HD, 20), k = ct::rand_vec((size_t)B * NKV * HD, 21);
    ct::Vec v = ct::rand_vec((size_t)B * NKV * HD, 22), out(q.size()), att((size_t)B * NH);
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, 1, NH, NKV, HD);
    bool ok = true;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++)
                ok &= out[((size_t)b * NH + h) * HD + d] == v[((size_t)b * NKV + h / (NH / NKV)) * HD + d];
    CHECK(ok);
}

}  // namespace

int main() {
    check_config(4, 2);
    check_config(2, 2);
    check_gqa_equals_repeat_kv();
    check_single_position();
    return ct::finish("attention");
}
