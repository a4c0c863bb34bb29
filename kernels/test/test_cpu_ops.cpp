// CPU backend non-matmul ops (src/cpu/cpu_ops.h) vs the reference ops (ref_ops.h), forward and backward, with 1
// and 2 threads (also 3 for attention), awkward sizes (T = 1, T not a multiple of the 32-row block, HD = 8/12/64/128,
// NH/NKV = 4/1, 6/2, 8/8) and prefilled gradient buffers so every backward is checked as an accumulation. Prints
// the max abs/rel difference of each comparison. Attention backward has two schedules, both covered: whole
// (batch, kv head) items (1 thread; B*NKV = 3, 4, 8) and split dq / dk-dv items (B*NKV = 1 at 2-3 threads,
// B*NKV = 2 and 4 at 3 threads); T = 300 also covers a partial group of key blocks.
// Not a gradient check: the reference ops are themselves checked against finite differences by their own tests.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../src/cpu/cpu_ops.h"
#include "check.h"
#include "confidant/ref_ops.h"
#include "confidant/weights.h"

using confidant::cpu::SimdLevel;
using confidant::cpu::ThreadPool;
namespace cpu = confidant::cpu;
namespace ref = confidant::ref;

namespace {

std::string name(const char* what, int threads, const char* extra = "") {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s %s (%d thr)", what, extra, threads);
  return buf;
}

// ------------------------------------------------------------------------------------------------- attention

// lse[b,h,t] = log sum_{s<=t} exp(q_t . k_s / sqrt(HD)) in double.
std::vector<double> ref_lse(const ct::Vec& q, const ct::Vec& k, int B, int T, int NH, int NKV, int HD) {
  std::vector<double> lse(size_t(B) * NH * T);
  const double scale = 1.0 / std::sqrt(double(HD));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -INFINITY;
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < HD; ++i)
            d += double(q[((size_t(b) * T + t) * NH + h) * HD + i]) * k[((size_t(b) * T + j) * NKV + h / (NH / NKV)) * HD + i];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= t; ++j) sum += std::exp(s[j] - mx);
        lse[(size_t(b) * NH + h) * T + t] = mx + std::log(sum);
      }
  return lse;
}

void check_attention(int B, int T, int NH, int NKV, int HD, float q_scale) {
  char cfg[96];
  std::snprintf(cfg, sizeof cfg, "B=%d T=%d NH=%d NKV=%d HD=%d ", B, T, NH, NKV, HD);
  std::printf(" attention %s\n", cfg);
  const size_t nq = size_t(B) * T * NH * HD, nkv = size_t(B) * T * NKV * HD;
  const uint32_t seed = 1000 + T * 7 + NH * 3 + HD;
  const ct::Vec q = ct::rand_vec(nq, seed, q_scale), k = ct::rand_vec(nkv, seed + 1, q_scale);
  const ct::Vec v = ct::rand_vec(nkv, seed + 2), dout = ct::rand_vec(nq, seed + 3);
  ct::Vec want_out(nq), att(size_t(B) * NH * T * T);
  ref::attention_forward(want_out.data(), att.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
  const std::vector<double> want_lse = ref_lse(q, k, B, T, NH, NKV, HD);
  ct::Vec want_dq(nq), want_dk(nkv), want_dv(nkv);
  ref::attention_backward(want_dq.data(), want_dk.data(), want_dv.data(), dout.data(), att.data(), q.data(), k.data(),
                          v.data(), B, T, NH, NKV, HD);
  // Every row-kernel table this machine runs (attention_rows.h): the portable one and AVX2 on x86.
  for (const SimdLevel level : {SimdLevel::Scalar, SimdLevel::Neon, SimdLevel::Avx2}) {
    if (!confidant::cpu::simd_level_available(level)) continue;
    const char* lv = confidant::cpu::simd_level_name(level);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      ct::Vec out(nq), lse(size_t(B) * NH * T);
      cpu::attention_forward(pool, level, out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
      ct::expect_close(name("attn out", threads, lv).c_str(), out, want_out, 1e-4, 2e-6);
      ct::expect_close(name("attn lse", threads, lv).c_str(), lse, want_lse, 1e-5, 2e-6);
      ct::Vec out_nolse(nq);  // lse is nullable
      cpu::attention_forward(pool, level, out_nolse.data(), nullptr, q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
      CHECK(out_nolse == out);

      ct::Grad dq(nq, 11), dk(nkv, 12), dv(nkv, 13);
      cpu::attention_backward(pool, level, dq.data(), dk.data(), dv.data(), dout.data(), out.data(), lse.data(),
                              q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
      ct::expect_close(name("attn dq +=", threads, lv).c_str(), dq.delta(), want_dq, 1e-3, 1e-5);
      ct::expect_close(name("attn dk +=", threads, lv).c_str(), dk.delta(), want_dk, 1e-3, 1e-5);
      ct::expect_close(name("attn dv +=", threads, lv).c_str(), dv.delta(), want_dv, 1e-3, 1e-5);
    }
  }
}

// ------------------------------------------------------------------------------------------------- embedding

void check_embedding(int threads) {
  ThreadPool pool(threads);
  const int V = 37, C = 192, N = 300;
  std::vector<int32_t> tokens(N);
  for (int n = 0; n < N; ++n) tokens[n] = (n * 7 + n / 5) % V;  // every token repeats
  const ct::Vec wte = ct::rand_vec(size_t(V) * C, 1);
  for (int f = 0; f < confidant::kNumWDTypes; ++f) {
    const auto t = static_cast<confidant::WDType>(f);
    std::vector<unsigned char> packed(confidant::wdtype_matrix_bytes(t, V, C));
    confidant::quantize_matrix(t, packed.data(), wte.data(), V, C);
    const auto view = confidant::WeightView::packed(t, packed.data(), V, C);
    ct::Vec want(size_t(N) * C), got(size_t(N) * C);
    for (int n = 0; n < N; ++n) confidant::dequantize_row(view, tokens[n], want.data() + size_t(n) * C);
    cpu::embedding_forward(pool, got.data(), tokens.data(), view, N, C);
    ct::expect_close(name("embedding fwd", threads, confidant::wdtype_name(t)).c_str(), got, want, 0, 0);
  }
  // Enough rows that the column split of the backward engages two threads.
  const int NB = 2000;
  std::vector<int32_t> tb(NB);
  for (int n = 0; n < NB; ++n) tb[n] = (n * 13) % V;
  const ct::Vec dout = ct::rand_vec(size_t(NB) * C, 2);
  // Rows are added in the reference's order (the threads split columns), so onto the same prefilled buffer the
  // result is bit-identical.
  ct::Grad dwte(size_t(V) * C, 3);
  ct::Vec want = dwte.prior;
  ref::embedding_backward(want.data(), dout.data(), tb.data(), NB, C);
  cpu::embedding_backward(pool, dwte.data(), dout.data(), tb.data(), NB, C);
  ct::expect_close(name("embedding dwte +=", threads).c_str(), dwte.buf, want, 0, 0);
}

// --------------------------------------------------------------------------------------------------- rmsnorm

void check_rmsnorm(int threads, int N, int C) {
  ThreadPool pool(threads);
  char cfg[48];
  std::snprintf(cfg, sizeof cfg, "N=%d C=%d ", N, C);
  const ct::Vec x = ct::rand_vec(size_t(N) * C, 21, 3.0f), w = ct::rand_vec(C, 22), dout = ct::rand_vec(size_t(N) * C, 23);
  ct::Vec want(size_t(N) * C), want_r(N), got(size_t(N) * C), got_r(N);
  ref::rmsnorm_forward(want.data(), want_r.data(), x.data(), w.data(), N, C, 1e-5f);
  cpu::rmsnorm_forward(pool, got.data(), got_r.data(), x.data(), w.data(), N, C, 1e-5f);
  ct::expect_close(name("rmsnorm out", threads, cfg).c_str(), got, want, 1e-5, 1e-6);
  ct::expect_close(name("rmsnorm rstd", threads, cfg).c_str(), got_r, want_r, 1e-5, 0);
  ct::Vec want_dx(size_t(N) * C), want_dw(C);
  ref::rmsnorm_backward(want_dx.data(), want_dw.data(), dout.data(), x.data(), w.data(), want_r.data(), N, C);
  ct::Grad dx(size_t(N) * C, 24), dw(C, 25);
  cpu::rmsnorm_backward(pool, dx.data(), dw.data(), dout.data(), x.data(), w.data(), want_r.data(), N, C);
  ct::expect_close(name("rmsnorm dx +=", threads, cfg).c_str(), dx.delta(), want_dx, 1e-4, 1e-5);
  ct::expect_close(name("rmsnorm dw +=", threads, cfg).c_str(), dw.delta(), want_dw, 1e-4, 1e-5);
  ct::Grad dx2(size_t(N) * C, 24);  // dw nullable (frozen norm weight)
  cpu::rmsnorm_backward(pool, dx2.data(), nullptr, dout.data(), x.data(), w.data(), want_r.data(), N, C);
  CHECK(dx2.buf == dx.buf);
}

// ------------------------------------------------------------------------------------------------------ rope

// A scaled table (every other frequency divided by 8, as Llama 3's low-frequency band) must reach the cache key too.
void check_rope(int threads, int B, int T, int NH, int HD, int pos0, bool scaled) {
  ThreadPool pool(threads);
  std::vector<float> inv_freq = ref::rope_default_inv_freq(HD, 10000.0f);
  if (scaled) {
    for (size_t i = 0; i < inv_freq.size(); i += 2) inv_freq[i] /= 8.0f;
  }
  char cfg[64];
  std::snprintf(cfg, sizeof cfg, "T=%d HD=%d pos0=%d %s", T, HD, pos0, scaled ? "scaled " : "");
  const size_t n = size_t(B) * T * NH * HD;
  const ct::Vec in = ct::rand_vec(n, 31), dout = ct::rand_vec(n, 32);
  ct::Vec want(n), got(n);
  ref::rope_forward(want.data(), in.data(), B, T, NH, HD, pos0, inv_freq.data());
  cpu::rope_forward(pool, got.data(), in.data(), B, T, NH, HD, pos0, inv_freq.data());
  ct::expect_close(name("rope fwd", threads, cfg).c_str(), got, want, 1e-5, 1e-6);
  ct::Vec inplace = in;
  cpu::rope_forward(pool, inplace.data(), inplace.data(), B, T, NH, HD, pos0, inv_freq.data());
  CHECK(inplace == got);
  ct::Vec want_din(n);
  ref::rope_backward(want_din.data(), dout.data(), B, T, NH, HD, pos0, inv_freq.data());
  ct::Grad din(n, 33);
  cpu::rope_backward(pool, din.data(), dout.data(), B, T, NH, HD, pos0, inv_freq.data());
  ct::expect_close(name("rope din +=", threads, cfg).c_str(), din.delta(), want_din, 1e-5, 1e-6);
}

// ---------------------------------------------------------------------------------------------------- swiglu

void check_swiglu(int threads) {
  ThreadPool pool(threads);
  const int N = 37, H = 2001;  // H odd: vector tail; 74k elements: two threads engage
  const size_t n = size_t(N) * H;
  ct::Vec g = ct::rand_vec(n, 41, 6.0f);
  g[0] = 100.0f, g[1] = -100.0f, g[2] = 0.0f;  // saturated sigmoid both ways
  const ct::Vec u = ct::rand_vec(n, 42), dh = ct::rand_vec(n, 43);
  ct::Vec want(n), got(n);
  ref::swiglu_forward(want.data(), g.data(), u.data(), N, H);
  cpu::swiglu_forward(pool, got.data(), g.data(), u.data(), N, H);
  ct::expect_close(name("swiglu h", threads).c_str(), got, want, 1e-5, 1e-6);
  {  // a NaN gate must come out NaN (not be flushed by the vector exp), so divergence stays visible
    ct::Vec gn(g.begin(), g.begin() + 16), un(u.begin(), u.begin() + 16), hn(16);
    gn[3] = NAN;
    cpu::swiglu_forward(pool, hn.data(), gn.data(), un.data(), 1, 16);
    CHECK(std::isnan(hn[3]) && !std::isnan(hn[2]));
  }
  ct::Vec want_dg(n), want_du(n);
  ref::swiglu_backward(want_dg.data(), want_du.data(), dh.data(), g.data(), u.data(), N, H);
  ct::Grad dg(n, 44), du(n, 45);
  cpu::swiglu_backward(pool, dg.data(), du.data(), dh.data(), g.data(), u.data(), N, H);
  ct::expect_close(name("swiglu dg +=", threads).c_str(), dg.delta(), want_dg, 1e-5, 1e-6);
  ct::expect_close(name("swiglu du +=", threads).c_str(), du.delta(), want_du, 1e-5, 1e-6);
}

// -------------------------------------------------------------------------------------------------- residual

void check_residual(int threads) {
  ThreadPool pool(threads);
  const size_t n = 100003;
  const ct::Vec a = ct::rand_vec(n, 51), b = ct::rand_vec(n, 52), dout = ct::rand_vec(n, 53);
  ct::Vec want(n), got(n);
  ref::residual_forward(want.data(), a.data(), b.data(), n);
  cpu::residual_forward(pool, got.data(), a.data(), b.data(), n);
  ct::expect_close(name("residual out", threads).c_str(), got, want, 0, 0);
  ct::Vec inplace = a;
  cpu::residual_forward(pool, inplace.data(), inplace.data(), b.data(), n);
  CHECK(inplace == want);
  ct::Grad da(n, 54), db(n, 55);
  ct::Vec want_da = da.buf, want_db = db.buf;
  ref::residual_backward(want_da.data(), want_db.data(), dout.data(), n);
  cpu::residual_backward(pool, da.data(), db.data(), dout.data(), n);
  ct::expect_close(name("residual da +=", threads).c_str(), da.buf, want_da, 0, 0);
  ct::expect_close(name("residual db +=", threads).c_str(), db.buf, want_db, 0, 0);
}

// --------------------------------------------------------------------------------------------- cross-entropy

void check_cross_entropy(int threads) {
  ThreadPool pool(threads);
  const int N = 9, V = 30011;  // V not a multiple of 8
  ct::Vec logits = ct::rand_vec(size_t(N) * V, 61, 8.0f);
  for (int v = 0; v < V; ++v) logits[size_t(1) * V + v] += 1000.0f;  // large logits: must not overflow
  for (int v = 0; v < V; ++v) logits[size_t(2) * V + v] -= 1000.0f;
  logits[size_t(3) * V + 5] = 80.0f;  // one dominant logit: p close to 1
  const std::vector<int32_t> targets = {3, 17, V - 1, 5, -1, 0, 12345, 99, 7};
  const ct::Vec mask = {1, 1, 1, 1, 0, 0.5f, 1, 0, 1};  // rows 4 and 7 ignored (row 4 has an invalid target)
  ct::Vec want(N), got(N);
  const double want_sum = ref::cross_entropy_forward(want.data(), logits.data(), targets.data(), mask.data(), N, V);
  const double got_sum =
      cpu::cross_entropy_forward(pool, got.data(), logits.data(), targets.data(), mask.data(), N, V);
  ct::expect_close(name("cross-entropy losses", threads).c_str(), got, want, 1e-5, 1e-5);
  const double sum_err = std::fabs(got_sum - want_sum);
  std::printf("  %-34s abs err %.3g\n", name("cross-entropy sum", threads).c_str(), sum_err);
  CHECK(sum_err <= 1e-5 * std::fabs(want_sum) + 1e-5);
  ct::Vec want_d(size_t(N) * V);
  ref::cross_entropy_backward(want_d.data(), logits.data(), targets.data(), mask.data(), 0.125f, N, V);
  ct::Grad d(size_t(N) * V, 62);
  cpu::cross_entropy_backward(pool, d.data(), logits.data(), targets.data(), mask.data(), 0.125f, N, V);
  ct::expect_close(name("cross-entropy dlogits +=", threads).c_str(), d.delta(), want_d, 1e-4, 1e-7);
}

// ----------------------------------------------------------------------------------------------------- adamw

void check_adamw(int threads) {
  ThreadPool pool(threads);
  const size_t n = 50001;
  const ct::Vec grad = ct::rand_vec(n, 71);
  ct::Vec p = ct::rand_vec(n, 72), m = ct::rand_vec(n, 73, 0.1f), v = ct::rand_vec(n, 74, 0.01f);
  for (float& x : v) x = std::fabs(x);
  ct::Vec wp = p, wm = m, wv = v;
  ref::adamw_step(wp.data(), grad.data(), wm.data(), wv.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.7f);
  cpu::adamw_step(pool, p.data(), grad.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.7f);
  ct::expect_close(name("adamw param", threads).c_str(), p, wp, 0, 0);
  ct::expect_close(name("adamw m", threads).c_str(), m, wm, 0, 0);
  ct::expect_close(name("adamw v", threads).c_str(), v, wv, 0, 0);
}

}  // namespace

int main() {
  // (B, T, NH, NKV, HD, q/k scale): T = 1; T = 37, 300 not multiples of 32; GQA 4/1, 6/2, MHA 8/8; HD 8..128;
  // HD = 12 takes the scalar column tail; scale 4 makes the softmax peaky so the online max rescaling matters.
  check_attention(1, 1, 4, 1, 8, 1.0f);
  check_attention(2, 37, 6, 2, 64, 2.0f);
  check_attention(1, 300, 4, 1, 64, 4.0f);
  check_attention(1, 65, 8, 8, 128, 1.0f);
  check_attention(3, 33, 2, 1, 12, 2.0f);
  check_attention(1, 100, 6, 2, 8, 4.0f);
  for (int threads : {1, 2}) {
    std::printf(" elementwise ops, %d thread(s)\n", threads);
    check_embedding(threads);
    check_rmsnorm(threads, 67, 1000);
    check_rmsnorm(threads, 5, 13);
    check_rope(threads, 2, 100, 6, 128, 0, false);
    check_rope(threads, 1, 37, 4, 8, 7, false);
    check_rope(threads, 2, 1, 3, 64, 511, false);
    check_rope(threads, 1, 37, 4, 8, 7, true);  // after an unscaled call with the same shape: a stale cache shows
    check_swiglu(threads);
    check_residual(threads);
    check_cross_entropy(threads);
    check_adamw(threads);
  }
  return ct::finish("cpu_ops");
}
