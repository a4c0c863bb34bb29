// Every op of every backend (backends_under_test.h) against the naive reference ops (ref_ops.h): forward and
// backward, awkward sizes (rows not a multiple of any tile, C = 64/96/200, odd output widths, several k and column
// blocks), and for the matmuls every weight format, against the reference run on the dequantised matrix. Gradient
// outputs are prefilled with random values, so "accumulates (+=)" is checked too. Prints max abs / rel difference
// per case. Not testing speed (bench/bench_matmul.cpp) or the formats' own error (test_formats.cpp).
#include <cmath>
#include <cstdarg>
#include <cstring>
#include <string>
#include <vector>

#include "backends_under_test.h"
#include "check.h"
#include "confidant/ref_ops.h"
#include "confidant/weights.h"
#include "cpu_threads.h"

using namespace confidant;
using ct::Vec;

namespace {

struct Tol {
  double rtol, atol;
};

std::string label_of(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string label_of(const char* fmt, ...) {
  char buf[160];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

void expect(const std::string& backend, const std::string& what, const Vec& got, const std::vector<double>& want,
            Tol t) {
  const ct::Err e = ct::compare(got, want, t.rtol, t.atol);
  std::printf("  %-14s %-56s max abs %.2e  max rel %.2e  %s\n", backend.c_str(), what.c_str(), e.max_abs, e.max_rel,
              e.ok ? "ok" : "FAIL");
  if (!e.ok) {
    std::fprintf(stderr, "  %s %s: worst element %zu got %.8g want %.8g (rtol %g atol %g)\n", backend.c_str(),
                 what.c_str(), e.worst, got[e.worst], want[e.worst], t.rtol, t.atol);
    ++ct::failures;
  }
}
void expect(const std::string& backend, const std::string& what, const Vec& got, const Vec& want, Tol t) {
  expect(backend, what, got, std::vector<double>(want.begin(), want.end()), t);
}

// A packed weight matrix and the dequantised f32 matrix the reference computes with.
struct Packed {
  std::vector<uint8_t> bytes;
  WeightView view;
  Vec deq;
  Packed(WDType t, const Vec& w, int rows, int cols)
      : bytes(wdtype_matrix_bytes(t, rows, cols)), deq(size_t(rows) * cols) {
    quantize_matrix(t, bytes.data(), w.data(), rows, cols);
    view = WeightView::packed(t, bytes.data(), rows, cols);
    for (int r = 0; r < rows; ++r) dequantize_row(view, r, deq.data() + size_t(r) * cols);
  }
};

// Matmuls accumulate in float (the reference in double): the difference grows like sqrt(K) * eps * |terms|.
// Quantised formats get a little more room: the fast dequantisers may fuse q * d + m into one rounding.
Tol matmul_tol(WDType t) {
  switch (t) {
    case WDType::F32: return {2e-5, 2e-5};
    case WDType::F16: return {2e-5, 2e-5};
    default: return {5e-5, 5e-5};
  }
}

// ---------------------------------------------------------------- matmuls

struct MmCase {
  int N, C, OC;
};

void test_linear(const ct::BackendUnderTest& bt, const MmCase& mc, WDType dt, uint32_t seed) {
  const int N = mc.N, C = mc.C, OC = mc.OC, R = (seed % 2) ? 8 : 16;
  const float scale = 2.0f;
  Backend& be = *bt.backend;
  const Packed W(dt, ct::rand_vec(size_t(OC) * C, seed), OC, C);
  const Vec x = ct::rand_vec(size_t(N) * C, seed + 1), bias = ct::rand_vec(OC, seed + 2),
            dout = ct::rand_vec(size_t(N) * OC, seed + 3), A = ct::rand_vec(size_t(R) * C, seed + 4, 0.2f),
            B = ct::rand_vec(size_t(OC) * R, seed + 5, 0.2f);
  const std::string shape = label_of("%s N=%d C=%d OC=%d", wdtype_name(dt), N, C, OC);
  const Tol tol = matmul_tol(dt);

  for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
    Vec got(size_t(N) * OC, NAN), want(size_t(N) * OC);
    be.linear_forward(got.data(), x.data(), W.view, b, N, C, OC);
    be.synchronize();
    ref::linear_forward(want.data(), x.data(), W.deq.data(), b, N, C, OC);
    expect(bt.label, "linear " + shape + (b ? " bias" : ""), got, want, tol);
  }

  Vec dx = ct::rand_vec(size_t(N) * C, seed + 6), dx_want = dx;
  be.linear_backward_input(dx.data(), dout.data(), W.view, N, C, OC);
  be.synchronize();
  ref::linear_backward_input(dx_want.data(), dout.data(), W.deq.data(), N, C, OC);
  expect(bt.label, "linear_backward_input " + shape, dx, dx_want, tol);

  // Fused base + LoRA (and without adapter: xa untouched).
  Vec out(size_t(N) * OC, NAN), xa(size_t(N) * R, NAN), out_want(size_t(N) * OC), xa_want(size_t(N) * R);
  be.linear_lora_forward(out.data(), xa.data(), x.data(), W.view, bias.data(), A.data(), B.data(), N, C, R, OC, scale);
  be.synchronize();
  ref::linear_forward(out_want.data(), x.data(), W.deq.data(), bias.data(), N, C, OC);
  ref::lora_forward(out_want.data(), xa_want.data(), x.data(), A.data(), B.data(), N, C, R, OC, scale);
  expect(bt.label, label_of("linear_lora_forward R=%d ", R) + shape, out, out_want, tol);
  expect(bt.label, label_of("linear_lora_forward xa R=%d ", R) + shape, xa, xa_want, tol);
  Vec xa_keep(size_t(N) * R, 7.0f);
  be.linear_lora_forward(out.data(), xa_keep.data(), x.data(), W.view, nullptr, nullptr, nullptr, N, C, R, OC, scale);
  be.synchronize();
  ref::linear_forward(out_want.data(), x.data(), W.deq.data(), nullptr, N, C, OC);
  expect(bt.label, "linear_lora_forward no adapter " + shape, out, out_want, tol);
  CHECK(xa_keep == Vec(size_t(N) * R, 7.0f));
}

// A sub-block view (slice_rows / slice_cols) of a bigger packed matrix: row stride and I8 scales come from the
// parent, not from the view's own width.
void test_linear_slice(const ct::BackendUnderTest& bt, WDType dt, uint32_t seed) {
  const int rows = 80, cols = 128, N = 37, OC = 61, C = 64;
  Backend& be = *bt.backend;
  const Packed full(dt, ct::rand_vec(size_t(rows) * cols, seed), rows, cols);
  const WeightView W = full.view.slice_rows(5, OC).slice_cols(32, C);
  Vec deq(size_t(OC) * C);
  for (int r = 0; r < OC; ++r) std::memcpy(&deq[size_t(r) * C], &full.deq[size_t(r + 5) * cols + 32], C * sizeof(float));
  const Vec x = ct::rand_vec(size_t(N) * C, seed + 1), dout = ct::rand_vec(size_t(N) * OC, seed + 2);
  const std::string shape = label_of("%s slice [5,66)x[32,96) of 80x128 N=%d", wdtype_name(dt), N);
  for (int n : {N, 1}) {
    Vec out(size_t(n) * OC, NAN), want(size_t(n) * OC);
    be.linear_forward(out.data(), x.data(), W, nullptr, n, C, OC);
    be.synchronize();
    ref::linear_forward(want.data(), x.data(), deq.data(), nullptr, n, C, OC);
    expect(bt.label, "linear " + shape + (n == 1 ? " (1 row)" : ""), out, want, matmul_tol(dt));
  }
  Vec dx = ct::rand_vec(size_t(N) * C, seed + 3), dx_want = dx;
  be.linear_backward_input(dx.data(), dout.data(), W, N, C, OC);
  be.synchronize();
  ref::linear_backward_input(dx_want.data(), dout.data(), deq.data(), N, C, OC);
  expect(bt.label, "linear_backward_input " + shape, dx, dx_want, matmul_tol(dt));
}

void test_lora(const ct::BackendUnderTest& bt, int N, int C, int R, int OC, uint32_t seed) {
  Backend& be = *bt.backend;
  const float scale = 0.5f;
  const Vec x = ct::rand_vec(size_t(N) * C, seed), A = ct::rand_vec(size_t(R) * C, seed + 1),
            B = ct::rand_vec(size_t(OC) * R, seed + 2), dout = ct::rand_vec(size_t(N) * OC, seed + 3);
  const std::string shape = label_of("N=%d C=%d R=%d OC=%d", N, C, R, OC);
  // dA and dB reduce over N (300 here) onto priors of up to ~30: more float rounding than the forward.
  const Tol tol{2e-5, 1e-4};
  Vec out = ct::rand_vec(size_t(N) * OC, seed + 4), out_want = out, xa(size_t(N) * R), xa_want(size_t(N) * R);
  be.lora_forward(out.data(), xa.data(), x.data(), A.data(), B.data(), N, C, R, OC, scale);
  be.synchronize();
  ref::lora_forward(out_want.data(), xa_want.data(), x.data(), A.data(), B.data(), N, C, R, OC, scale);
  expect(bt.label, "lora_forward out " + shape, out, out_want, tol);
  expect(bt.label, "lora_forward xa " + shape, xa, xa_want, tol);

  for (bool frozen_a : {false, true}) {
    Vec dx = ct::rand_vec(size_t(N) * C, seed + 5), dA = ct::rand_vec(size_t(R) * C, seed + 6),
        dB = ct::rand_vec(size_t(OC) * R, seed + 7);
    Vec dx_w = dx, dA_w = dA, dB_w = dB;
    be.lora_backward(dx.data(), frozen_a ? nullptr : dA.data(), dB.data(), dout.data(), x.data(), xa_want.data(),
                     A.data(), B.data(), N, C, R, OC, scale);
    be.synchronize();
    ref::lora_backward(dx_w.data(), frozen_a ? nullptr : dA_w.data(), dB_w.data(), dout.data(), x.data(),
                       xa_want.data(), A.data(), B.data(), N, C, R, OC, scale);
    const std::string tag = frozen_a ? " (A frozen) " : " ";
    expect(bt.label, "lora_backward dx" + tag + shape, dx, dx_w, tol);
    if (!frozen_a) expect(bt.label, "lora_backward dA" + tag + shape, dA, dA_w, tol);
    expect(bt.label, "lora_backward dB" + tag + shape, dB, dB_w, tol);
  }
}

// ---------------------------------------------------------------- the other ops

void test_embedding(const ct::BackendUnderTest& bt, int V, int N, int C, WDType dt, uint32_t seed) {
  Backend& be = *bt.backend;
  const Packed wte(dt, ct::rand_vec(size_t(V) * C, seed), V, C);
  std::vector<int32_t> tokens(N);
  for (int n = 0; n < N; ++n) tokens[n] = int32_t((n * 7 + seed) % V);
  tokens[N - 1] = tokens[0];  // a repeated token: its gradients must add up
  const std::string shape = label_of("%s V=%d N=%d C=%d", wdtype_name(dt), V, N, C);
  Vec out(size_t(N) * C, NAN), want(size_t(N) * C);
  be.embedding_forward(out.data(), tokens.data(), wte.view, N, C);
  be.synchronize();
  for (int n = 0; n < N; ++n) std::memcpy(&want[size_t(n) * C], &wte.deq[size_t(tokens[n]) * C], C * sizeof(float));
  expect(bt.label, "embedding_forward " + shape, out, want, {1e-6, 1e-7});
  if (dt != WDType::F32) return;
  const Vec dout = ct::rand_vec(size_t(N) * C, seed + 1);
  Vec dwte = ct::rand_vec(size_t(V) * C, seed + 2), dwte_w = dwte;
  be.embedding_backward(dwte.data(), dout.data(), tokens.data(), N, C);
  be.synchronize();
  ref::embedding_backward(dwte_w.data(), dout.data(), tokens.data(), N, C);
  expect(bt.label, label_of("embedding_backward V=%d N=%d C=%d", V, N, C), dwte, dwte_w, {1e-6, 1e-6});
}

void test_rmsnorm(const ct::BackendUnderTest& bt, int N, int C, uint32_t seed) {
  Backend& be = *bt.backend;
  const Vec x = ct::rand_vec(size_t(N) * C, seed, 2.0f), w = ct::rand_vec(C, seed + 1),
            dout = ct::rand_vec(size_t(N) * C, seed + 2);
  const std::string shape = label_of("N=%d C=%d", N, C);
  Vec out(size_t(N) * C), rstd(N), out_w(size_t(N) * C), rstd_w(N);
  be.rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
  be.synchronize();
  ref::rmsnorm_forward(out_w.data(), rstd_w.data(), x.data(), w.data(), N, C, 1e-5f);
  expect(bt.label, "rmsnorm_forward out " + shape, out, out_w, {1e-5, 1e-6});
  expect(bt.label, "rmsnorm_forward rstd " + shape, rstd, rstd_w, {1e-5, 1e-6});
  for (bool with_dw : {true, false}) {
    Vec dx = ct::rand_vec(size_t(N) * C, seed + 3), dw = ct::rand_vec(C, seed + 4), dx_w = dx, dw_w = dw;
    be.rmsnorm_backward(dx.data(), with_dw ? dw.data() : nullptr, dout.data(), x.data(), w.data(), rstd_w.data(), N,
                        C);
    be.synchronize();
    ref::rmsnorm_backward(dx_w.data(), with_dw ? dw_w.data() : nullptr, dout.data(), x.data(), w.data(),
                          rstd_w.data(), N, C);
    expect(bt.label, std::string("rmsnorm_backward dx ") + (with_dw ? "" : "(w frozen) ") + shape, dx, dx_w,
           {1e-5, 1e-5});
    if (with_dw) expect(bt.label, "rmsnorm_backward dw " + shape, dw, dw_w, {1e-5, 1e-5});
  }
}

// factor > 1 divides the upper half of the frequencies (a stand-in for a scaled table such as Llama 3's).
void test_rope(const ct::BackendUnderTest& bt, int B, int T, int NH, int HD, int pos0, float theta, float factor,
               uint32_t seed) {
  Backend& be = *bt.backend;
  std::vector<float> inv_freq = ref::rope_default_inv_freq(HD, theta);
  for (size_t i = inv_freq.size() / 2; i < inv_freq.size(); ++i) inv_freq[i] /= factor;
  const size_t n = size_t(B) * T * NH * HD;
  const Vec in = ct::rand_vec(n, seed), dout = ct::rand_vec(n, seed + 1);
  const std::string shape =
      label_of("B=%d T=%d NH=%d HD=%d pos0=%d theta=%g factor=%g", B, T, NH, HD, pos0, theta, factor);
  Vec out(n), want(n), inplace = in;
  be.rope_forward(out.data(), in.data(), B, T, NH, HD, pos0, inv_freq.data());
  be.rope_forward(inplace.data(), inplace.data(), B, T, NH, HD, pos0, inv_freq.data());
  be.synchronize();
  ref::rope_forward(want.data(), in.data(), B, T, NH, HD, pos0, inv_freq.data());
  expect(bt.label, "rope_forward " + shape, out, want, {1e-5, 1e-6});
  expect(bt.label, "rope_forward in-place " + shape, inplace, want, {1e-5, 1e-6});
  Vec din = ct::rand_vec(n, seed + 2), din_w = din;
  be.rope_backward(din.data(), dout.data(), B, T, NH, HD, pos0, inv_freq.data());
  be.synchronize();
  ref::rope_backward(din_w.data(), dout.data(), B, T, NH, HD, pos0, inv_freq.data());
  expect(bt.label, "rope_backward " + shape, din, din_w, {1e-5, 1e-6});
}

void test_attention(const ct::BackendUnderTest& bt, int B, int T, int NH, int NKV, int HD, uint32_t seed) {
  Backend& be = *bt.backend;
  const size_t nq = size_t(B) * T * NH * HD, nkv = size_t(B) * T * NKV * HD;
  const Vec q = ct::rand_vec(nq, seed, 2.0f), k = ct::rand_vec(nkv, seed + 1, 2.0f), v = ct::rand_vec(nkv, seed + 2),
            dout = ct::rand_vec(nq, seed + 3);
  const std::string shape = label_of("B=%d T=%d NH=%d NKV=%d HD=%d", B, T, NH, NKV, HD);
  Vec out(nq), lse(size_t(B) * NH * T), out_w(nq), att(size_t(B) * NH * T * T);
  be.attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
  be.synchronize();
  ref::attention_forward(out_w.data(), att.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
  expect(bt.label, "attention_forward out " + shape, out, out_w, {1e-4, 1e-5});
  // lse in double, straight from the definition.
  std::vector<double> lse_w(lse.size());
  const double sc = 1.0 / std::sqrt(double(HD));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -INFINITY, z = 0;
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int e = 0; e < HD; ++e)
            d += double(q[((size_t(b) * T + t) * NH + h) * HD + e]) * k[((size_t(b) * T + j) * NKV + h / (NH / NKV)) * HD + e];
          s[j] = d * sc;
          mx = std::fmax(mx, s[j]);
        }
        for (int j = 0; j <= t; ++j) z += std::exp(s[j] - mx);
        lse_w[(size_t(b) * NH + h) * T + t] = mx + std::log(z);
      }
  expect(bt.label, "attention_forward lse " + shape, lse, lse_w, {1e-5, 1e-5});
  Vec none(nq);
  be.attention_forward(none.data(), nullptr, q.data(), k.data(), v.data(), B, T, NH, NKV, HD);  // lse nullable
  be.synchronize();
  expect(bt.label, "attention_forward (no lse) " + shape, none, out_w, {1e-4, 1e-5});

  Vec dq = ct::rand_vec(nq, seed + 4), dk = ct::rand_vec(nkv, seed + 5), dv = ct::rand_vec(nkv, seed + 6);
  Vec dq_w = dq, dk_w = dk, dv_w = dv;
  be.attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), out.data(), lse.data(), q.data(), k.data(),
                        v.data(), B, T, NH, NKV, HD);
  be.synchronize();
  ref::attention_backward(dq_w.data(), dk_w.data(), dv_w.data(), dout.data(), att.data(), q.data(), k.data(), v.data(),
                          B, T, NH, NKV, HD);
  expect(bt.label, "attention_backward dq " + shape, dq, dq_w, {1e-4, 1e-5});
  expect(bt.label, "attention_backward dk " + shape, dk, dk_w, {1e-4, 1e-5});
  expect(bt.label, "attention_backward dv " + shape, dv, dv_w, {1e-4, 1e-5});
}

void test_swiglu(const ct::BackendUnderTest& bt, int N, int H, uint32_t seed) {
  Backend& be = *bt.backend;
  const size_t n = size_t(N) * H;
  const Vec g = ct::rand_vec(n, seed, 6.0f), u = ct::rand_vec(n, seed + 1, 2.0f), dh = ct::rand_vec(n, seed + 2);
  const std::string shape = label_of("N=%d H=%d", N, H);
  Vec h(n), h_w(n);
  be.swiglu_forward(h.data(), g.data(), u.data(), N, H);
  be.synchronize();
  ref::swiglu_forward(h_w.data(), g.data(), u.data(), N, H);
  expect(bt.label, "swiglu_forward " + shape, h, h_w, {1e-5, 1e-6});
  Vec dg = ct::rand_vec(n, seed + 3), du = ct::rand_vec(n, seed + 4), dg_w = dg, du_w = du;
  be.swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), N, H);
  be.synchronize();
  ref::swiglu_backward(dg_w.data(), du_w.data(), dh.data(), g.data(), u.data(), N, H);
  expect(bt.label, "swiglu_backward dg " + shape, dg, dg_w, {1e-5, 1e-6});
  expect(bt.label, "swiglu_backward du " + shape, du, du_w, {1e-5, 1e-6});
}

void test_residual(const ct::BackendUnderTest& bt, size_t n, uint32_t seed) {
  Backend& be = *bt.backend;
  const Vec a = ct::rand_vec(n, seed), b = ct::rand_vec(n, seed + 1), dout = ct::rand_vec(n, seed + 2);
  const std::string shape = label_of("n=%zu", n);
  Vec out(n), out_w(n), inplace = a;
  be.residual_forward(out.data(), a.data(), b.data(), n);
  be.residual_forward(inplace.data(), inplace.data(), b.data(), n);
  be.synchronize();
  ref::residual_forward(out_w.data(), a.data(), b.data(), n);
  expect(bt.label, "residual_forward " + shape, out, out_w, {0, 0});
  expect(bt.label, "residual_forward in-place " + shape, inplace, out_w, {0, 0});
  Vec da = ct::rand_vec(n, seed + 3), db = ct::rand_vec(n, seed + 4), da_w = da, db_w = db;
  be.residual_backward(da.data(), db.data(), dout.data(), n);
  be.synchronize();
  ref::residual_backward(da_w.data(), db_w.data(), dout.data(), n);
  expect(bt.label, "residual_backward da " + shape, da, da_w, {0, 0});
  expect(bt.label, "residual_backward db " + shape, db, db_w, {0, 0});
}

void test_cross_entropy(const ct::BackendUnderTest& bt, int N, int V, uint32_t seed) {
  Backend& be = *bt.backend;
  const Vec logits = ct::rand_vec(size_t(N) * V, seed, 8.0f);
  std::vector<int32_t> targets(N);
  Vec mask(N);
  for (int n = 0; n < N; ++n) {
    targets[n] = int32_t((n * 13 + seed) % V);
    mask[n] = n % 5 == 0 ? 0.0f : (n % 7 == 0 ? 0.5f : 1.0f);
  }
  targets[0] = V + 100;  // masked out: must not be read
  const std::string shape = label_of("N=%d V=%d", N, V);
  Vec losses(N), losses_w(N);
  const double sum = be.cross_entropy_forward(losses.data(), logits.data(), targets.data(), mask.data(), N, V);
  be.synchronize();
  const double sum_w = ref::cross_entropy_forward(losses_w.data(), logits.data(), targets.data(), mask.data(), N, V);
  expect(bt.label, "cross_entropy_forward losses " + shape, losses, losses_w, {1e-5, 1e-5});
  expect(bt.label, "cross_entropy_forward sum " + shape, Vec{float(sum)}, std::vector<double>{sum_w}, {1e-5, 1e-5});
  Vec dl = ct::rand_vec(size_t(N) * V, seed + 1), dl_w = dl;
  be.cross_entropy_backward(dl.data(), logits.data(), targets.data(), mask.data(), 1.0f / 30, N, V);
  be.synchronize();
  ref::cross_entropy_backward(dl_w.data(), logits.data(), targets.data(), mask.data(), 1.0f / 30, N, V);
  expect(bt.label, "cross_entropy_backward " + shape, dl, dl_w, {1e-5, 1e-6});
}

void test_adamw(const ct::BackendUnderTest& bt, size_t n, int t, uint32_t seed) {
  Backend& be = *bt.backend;
  const Vec grad = ct::rand_vec(n, seed);
  Vec p = ct::rand_vec(n, seed + 1), m = ct::rand_vec(n, seed + 2, 0.1f), v = ct::rand_vec(n, seed + 3, 0.01f);
  for (float& e : v) e = std::fabs(e);
  Vec p_w = p, m_w = m, v_w = v;
  be.adamw_step(p.data(), grad.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, t, 0.5f);
  be.synchronize();
  ref::adamw_step(p_w.data(), grad.data(), m_w.data(), v_w.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, t, 0.5f);
  const std::string shape = label_of("n=%zu t=%d", n, t);
  expect(bt.label, "adamw_step param " + shape, p, p_w, {1e-6, 1e-7});
  expect(bt.label, "adamw_step m " + shape, m, m_w, {1e-6, 1e-7});
  expect(bt.label, "adamw_step v " + shape, v, v_w, {1e-6, 1e-7});
}

// The default thread count: big cores by clock (cpu_threads.h), CONFIDANT_THREADS overriding it.
void test_threads() {
  using confidant::cpu::count_big_cores;
  // Snapdragon 8 Gen 2: 1 x 3.19 GHz + 4 x 2.8 GHz (+ 3 x 2.0 GHz efficiency cores).
  CHECK(count_big_cores({2016000, 2016000, 2016000, 2803200, 2803200, 2803200, 2803200, 3187200}) == 5);
  // Tensor G3: 1 x 2.91 + 4 x 2.37 + 4 x 1.7 GHz.
  CHECK(count_big_cores({1704000, 1704000, 1704000, 1704000, 2367000, 2367000, 2367000, 2367000, 2910000}) == 5);
  // Classic big.LITTLE 4 + 4 and a desktop with equal cores.
  CHECK(count_big_cores({1800000, 1800000, 1800000, 1800000, 2400000, 2400000, 2400000, 2400000}) == 4);
  CHECK(count_big_cores({3000000, 3000000}) == 2);
  CHECK(count_big_cores({}) == 0);
  CHECK(cpu_default_threads() >= 1);
  setenv("CONFIDANT_THREADS", "3", 1);
  CHECK(cpu_default_threads() == 3 && make_cpu_backend(0)->info().threads == 3);
  unsetenv("CONFIDANT_THREADS");
  CHECK(make_cpu_backend(2)->info().threads == 2);
  std::printf("  default threads here: %d (CONFIDANT_THREADS and the big-core rule checked)\n", cpu_default_threads());
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress is visible when a backend is slow
  test_threads();
  const ct::BackendsUnderTest backends;
  // Rows: 1 and 6 take the few-row path, 7+ the blocked one; 300 spans two row blocks below AVX-512, 1100 on
  // every level. C = 544 spans three k blocks; OC = 301 several column tasks. 200 is not a multiple of 32, so the
  // grouped formats skip it.
  const MmCase mm_cases[] = {{1, 64, 33},   {3, 96, 77},  {6, 200, 45},   {7, 64, 301},
                             {37, 200, 45}, {37, 96, 301}, {300, 320, 131}, {33, 544, 250},
                             {1100, 96, 40}};  // more rows than any level's packed block (mc)
  uint32_t seed = 100;
  for (const ct::BackendUnderTest& bt : backends.list()) {
    std::printf("== %s\n", bt.label.c_str());
    for (const MmCase& mc : mm_cases)
      for (int t = 0; t < kNumWDTypes; ++t) {
        const WDType dt = static_cast<WDType>(t);
        if (wdtype_is_grouped(dt) && mc.C % kGroup != 0) continue;
        test_linear(bt, mc, dt, seed += 10);
      }
    for (int t = 0; t < kNumWDTypes; ++t) test_linear_slice(bt, static_cast<WDType>(t), seed += 10);
    test_lora(bt, 37, 96, 8, 45, seed += 10);
    test_lora(bt, 300, 200, 16, 131, seed += 10);
    test_lora(bt, 1, 64, 4, 33, seed += 10);

    for (int C : {64, 96, 200})
      for (int t = 0; t < kNumWDTypes; ++t) {
        const WDType dt = static_cast<WDType>(t);
        if (wdtype_is_grouped(dt) && C % kGroup != 0) continue;
        test_embedding(bt, 53, 37, C, dt, seed += 10);
      }
    for (int C : {64, 96, 200}) test_rmsnorm(bt, 37, C, seed += 10);
    test_rope(bt, 2, 7, 3, 64, 5, 10000.0f, 1.0f, seed += 10);
    test_rope(bt, 1, 37, 2, 96, 0, 500000.0f, 1.0f, seed += 10);
    test_rope(bt, 1, 37, 2, 96, 0, 500000.0f, 8.0f, seed += 10);
    test_attention(bt, 2, 37, 4, 2, 64, seed += 10);
    test_attention(bt, 1, 1, 2, 2, 96, seed += 10);
    test_attention(bt, 1, 70, 2, 1, 32, seed += 10);
    test_swiglu(bt, 37, 200, seed += 10);
    test_residual(bt, 1003, seed += 10);
    test_cross_entropy(bt, 37, 200, seed += 10);
    test_cross_entropy(bt, 5, 1000, seed += 10);
    test_adamw(bt, 1003, 1, seed += 10);
    test_adamw(bt, 1003, 7, seed += 10);
  }
  return ct::finish("backend_ops");
}
