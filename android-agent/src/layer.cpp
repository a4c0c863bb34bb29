// The decoder layer as shares on two backends (layer.h). Read top to bottom: projections (row-sliced and
// column-sliced, each with its LoRA branch and P-RGE perturbation), the attention and MLP shares, then the layer.
#include "layer.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstring>
#include <future>
#include <stdexcept>
#include <system_error>

#include "confidant/prge.h"

namespace confidant::agent {

float* Arena::get(size_t n, bool zero) {
  bufs_.emplace_back(new float[std::max<size_t>(n, 1)]);
  float* p = bufs_.back().get();
  if (zero) std::fill(p, p + n, 0.0f);
  return p;
}

namespace {

// Which part of a LoRA adapter's gradient a share computed into its own buffers; added to the adapter after the
// share's backend has synchronised, so two shares never write the same gradient at once.
struct GradFold {
  LoraModule m = kQ;
  const float* dA = nullptr;  // (R, a_cols) or null when A is frozen
  int a_col0 = 0, a_cols = 0;
  const float* dB = nullptr;  // (b_rows, R)
  int b_row0 = 0, b_rows = 0;
};

struct Share {
  Backend& be;
  Arena& arena;
  std::vector<GradFold>* folds;  // backward only
};

// The columns [c0, c0+n) of a row-major (rows, cols) matrix, copied (LoRA A is tiny next to the base weights).
const float* column_slice(Arena& ar, const float* m, int rows, int cols, int c0, int n) {
  if (c0 == 0 && n == cols) return m;
  float* out = ar.get(size_t(rows) * n, false);
  for (int r = 0; r < rows; ++r) std::memcpy(out + size_t(r) * n, m + size_t(r) * cols + c0, size_t(n) * 4);
  return out;
}

// A P-RGE forward of one projection share: copy j = 2i+s of the batch (rows [j, j+1) * rows_per_copy) runs with
// its own adapter B + (s ? -1 : +1) * eps * z_(first_query + i), where z_i is the whole (OC, R) perturbation of this module's B
// and [r0, r0+rn) the rows of B (and of out) this share produces. Every copy's adapter goes into one low-rank term
// of inner size K = R + q*R next to the base matmul, so out is written in one pass and no perturbed copy of B
// exists:
//   xl row n = [ xa_n | 0 .. +-xa_n (in query i's R columns) .. 0 ],  L row o = scale * [ B_o | eps*z_0,o | .. ].
// A is frozen (LoRA-FA), so xa = x @ A^T comes first; x and A are this share's columns (in = their count).
void proj_zo_forward(Share& s, const LayerCtx& c, LoraModule m, const float* x, const WeightView& Ws,
                     const float* bias, const float* A, int in, const float* B, int r0, int rn, float* out,
                     float* xa) {
  const ZoPerturbation& zo = *c.zo;
  const int q = static_cast<int>(zo.queries), R = c.R, K = R + q * R, rows_per_copy = c.N / (2 * q);
  s.be.linear_forward(xa, x, WeightView::f32(A, R, in), nullptr, c.N, in, R);
  s.be.synchronize();  // xl is built from xa on the host
  float* xl = s.arena.get(size_t(c.N) * K, true);
  for (int n = 0; n < c.N; ++n) {
    const int copy = n / rows_per_copy, i = copy / 2;
    const float sign = copy % 2 == 0 ? 1.0f : -1.0f;
    const float* a = xa + size_t(n) * R;
    float* row = xl + size_t(n) * K;
    for (int r = 0; r < R; ++r) {
      row[r] = a[r];
      row[R + i * R + r] = sign * a[r];
    }
  }
  float* L = s.arena.get(size_t(rn) * K, false);
  for (int o = 0; o < rn; ++o)
    for (int r = 0; r < R; ++r) L[size_t(o) * K + r] = c.scale * B[size_t(o) * R + r];
  const float coeff = zo.eps * c.scale;
  const uint32_t pid = LoraSet::zo_param_id(c.layer, m);
  std::vector<float> z(size_t(rn) * R);  // only this share's rows of z_i
  for (int i = 0; i < q; ++i) {
    prge_fill_z_range(z.data(), uint64_t(r0) * R, z.size(), zo.seed, zo.step, zo.first_query + static_cast<uint32_t>(i),
                      pid);
    for (int o = 0; o < rn; ++o)
      for (int r = 0; r < R; ++r) L[size_t(o) * K + R + size_t(i) * R + r] = coeff * z[size_t(o) * R + r];
  }
  s.be.linear_lowrank_forward(out, x, Ws, bias, xl, L, c.N, in, K, rn);
}

// out (N, rn) = x (N, in) @ W[r0:r0+rn]^T + bias[r0:] + LoRA with B's rows [r0, r0+rn).
void proj_rows_forward(Share& s, const LayerCtx& c, LoraModule m, const float* x, const WeightView& W,
                       const float* bias, int r0, int rn, float* out, float* xa) {
  const WeightView Ws = W.slice_rows(r0, rn);
  const float* b = bias ? bias + r0 : nullptr;
  const LoraAdapter* ad = c.lora[m];
  if (ad && c.zo) {
    proj_zo_forward(s, c, m, x, Ws, b, ad->A.data(), W.cols, ad->B.data() + size_t(r0) * c.R, r0, rn, out, xa);
  } else if (ad) {
    s.be.linear_lora_forward(out, xa, x, Ws, b, ad->A.data(), ad->B.data() + size_t(r0) * c.R, c.N, W.cols, c.R, rn,
                             c.scale);
  } else {
    s.be.linear_forward(out, x, Ws, b, c.N, W.cols, rn);
  }
}

// out (N, OC) = x (N, cn) @ W[:, c0:c0+cn]^T + LoRA with A's columns [c0, c0+cn): a partial sum over shares.
void proj_cols_forward(Share& s, const LayerCtx& c, LoraModule m, const float* x, const WeightView& W, int c0, int cn,
                       float* out, float* xa) {
  const WeightView Ws = W.slice_cols(c0, cn);
  const LoraAdapter* ad = c.lora[m];
  if (ad) {
    const float* A = column_slice(s.arena, ad->A.data(), c.R, W.cols, c0, cn);
    if (c.zo) proj_zo_forward(s, c, m, x, Ws, nullptr, A, cn, ad->B.data(), 0, W.rows, out, xa);
    else s.be.linear_lora_forward(out, xa, x, Ws, nullptr, A, ad->B.data(), c.N, cn, c.R, W.rows, c.scale);
  } else {
    s.be.linear_forward(out, x, Ws, nullptr, c.N, cn, W.rows);
  }
}

// dx (N, in) += dout (N, rn) @ W[r0:r0+rn] + LoRA; LoRA gradients into share-owned buffers.
void proj_rows_backward(Share& s, const LayerCtx& c, LoraModule m, const float* dout, const float* x, const float* xa,
                        const WeightView& W, int r0, int rn, float* dx) {
  s.be.linear_backward_input(dx, dout, W.slice_rows(r0, rn), c.N, W.cols, rn);
  const LoraAdapter* ad = c.lora[m];
  if (!ad) return;
  GradFold f{m, nullptr, 0, W.cols, nullptr, r0, rn};
  float* dA = c.train_a ? s.arena.get(size_t(c.R) * W.cols, true) : nullptr;
  float* dB = s.arena.get(size_t(rn) * c.R, true);
  s.be.lora_backward(dx, dA, dB, dout, x, xa, ad->A.data(), ad->B.data() + size_t(r0) * c.R, c.N, W.cols, c.R, rn,
                     c.scale);
  f.dA = dA;
  f.dB = dB;
  s.folds->push_back(f);
}

// dx (N, cn) += dout (N, OC) @ W[:, c0:c0+cn] + LoRA; LoRA gradients into share-owned buffers.
void proj_cols_backward(Share& s, const LayerCtx& c, LoraModule m, const float* dout, const float* x, const float* xa,
                        const WeightView& W, int c0, int cn, float* dx) {
  s.be.linear_backward_input(dx, dout, W.slice_cols(c0, cn), c.N, cn, W.rows);
  const LoraAdapter* ad = c.lora[m];
  if (!ad) return;
  const float* A = column_slice(s.arena, ad->A.data(), c.R, W.cols, c0, cn);
  float* dA = c.train_a ? s.arena.get(size_t(c.R) * cn, true) : nullptr;
  float* dB = s.arena.get(size_t(W.rows) * c.R, true);
  s.be.lora_backward(dx, dA, dB, dout, x, xa, A, ad->B.data(), c.N, cn, c.R, W.rows, c.scale);
  s.folds->push_back(GradFold{m, dA, c0, cn, dB, 0, W.rows});
}

void apply_folds(const std::vector<GradFold>& folds, const std::array<LoraAdapter*, kNumLoraModules>& grads, int R) {
  for (const GradFold& f : folds) {
    LoraAdapter* ad = grads[f.m];
    if (f.dA && !ad->dA.empty()) {
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < f.a_cols; ++j) ad->dA[size_t(r) * ad->in + f.a_col0 + j] += f.dA[size_t(r) * f.a_cols + j];
    }
    for (size_t e = 0; e < size_t(f.b_rows) * R; ++e) ad->dB[size_t(f.b_row0) * R + e] += f.dB[e];
  }
}

int heads_per_group(const LayerCtx& c) { return c.NH / c.NKV; }

void attn_forward(Share& s, const LayerCtx& c, const float* xn1, AttnShare& a, float* out) {
  const int nh = a.nkv * heads_per_group(c), qc0 = a.kv0 * heads_per_group(c) * c.HD, qn = nh * c.HD;
  const int kc0 = a.kv0 * c.HD, kn = a.nkv * c.HD;
  const LayerWeights& w = *c.w;
  proj_rows_forward(s, c, kQ, xn1, w.wq, w.bq, qc0, qn, a.q.data(), a.xa[0].data());
  proj_rows_forward(s, c, kK, xn1, w.wk, w.bk, kc0, kn, a.k.data(), a.xa[1].data());
  proj_rows_forward(s, c, kV, xn1, w.wv, w.bv, kc0, kn, a.v.data(), a.xa[2].data());
  s.be.rope_forward(a.q.data(), a.q.data(), c.B, c.T, nh, c.HD, 0, c.inv_freq);
  s.be.rope_forward(a.k.data(), a.k.data(), c.B, c.T, a.nkv, c.HD, 0, c.inv_freq);
  s.be.attention_forward(a.y.data(), a.lse.data(), a.q.data(), a.k.data(), a.v.data(), c.B, c.T, nh, a.nkv, c.HD);
  proj_cols_forward(s, c, kO, a.y.data(), w.wo, qc0, qn, out, a.xa[3].data());
}

void attn_backward(Share& s, const LayerCtx& c, const float* xn1, const float* dh, const AttnShare& a, float* dxn) {
  const int nh = a.nkv * heads_per_group(c), qc0 = a.kv0 * heads_per_group(c) * c.HD, qn = nh * c.HD;
  const int kc0 = a.kv0 * c.HD, kn = a.nkv * c.HD;
  const LayerWeights& w = *c.w;
  const size_t N = size_t(c.N);
  float* dy = s.arena.get(N * qn, true);
  proj_cols_backward(s, c, kO, dh, a.y.data(), a.xa[3].data(), w.wo, qc0, qn, dy);
  float *dq = s.arena.get(N * qn, true), *dk = s.arena.get(N * kn, true), *dv = s.arena.get(N * kn, true);
  s.be.attention_backward(dq, dk, dv, dy, a.y.data(), a.lse.data(), a.q.data(), a.k.data(), a.v.data(), c.B, c.T, nh,
                          a.nkv, c.HD);
  float *dq0 = s.arena.get(N * qn, true), *dk0 = s.arena.get(N * kn, true);
  s.be.rope_backward(dq0, dq, c.B, c.T, nh, c.HD, 0, c.inv_freq);
  s.be.rope_backward(dk0, dk, c.B, c.T, a.nkv, c.HD, 0, c.inv_freq);
  proj_rows_backward(s, c, kQ, dq0, xn1, a.xa[0].data(), w.wq, qc0, qn, dxn);
  proj_rows_backward(s, c, kK, dk0, xn1, a.xa[1].data(), w.wk, kc0, kn, dxn);
  proj_rows_backward(s, c, kV, dv, xn1, a.xa[2].data(), w.wv, kc0, kn, dxn);
}

void mlp_forward(Share& s, const LayerCtx& c, const float* xn2, MlpShare& m, float* out) {
  const LayerWeights& w = *c.w;
  proj_rows_forward(s, c, kGate, xn2, w.wg, nullptr, m.c0, m.nc, m.g.data(), m.xa[0].data());
  proj_rows_forward(s, c, kUp, xn2, w.wu, nullptr, m.c0, m.nc, m.u.data(), m.xa[1].data());
  s.be.swiglu_forward(m.s.data(), m.g.data(), m.u.data(), c.N, m.nc);
  proj_cols_forward(s, c, kDown, m.s.data(), w.wd, m.c0, m.nc, out, m.xa[2].data());
}

void mlp_backward(Share& s, const LayerCtx& c, const float* xn2, const float* dout, const MlpShare& m, float* dxn) {
  const LayerWeights& w = *c.w;
  const size_t n = size_t(c.N) * m.nc;
  float* ds = s.arena.get(n, true);
  proj_cols_backward(s, c, kDown, dout, m.s.data(), m.xa[2].data(), w.wd, m.c0, m.nc, ds);
  float *dg = s.arena.get(n, true), *du = s.arena.get(n, true);
  s.be.swiglu_backward(dg, du, ds, m.g.data(), m.u.data(), c.N, m.nc);
  proj_rows_backward(s, c, kGate, dg, xn2, m.xa[0].data(), w.wg, m.c0, m.nc, dxn);
  proj_rows_backward(s, c, kUp, du, xn2, m.xa[1].data(), w.wu, m.c0, m.nc, dxn);
}

// The shares of a split: [0] goes to the secondary backend, [1] to the primary.
void share_ranges(const LayerCtx& c, const LayerSplit& sp, int kv0[2], int nkv[2], int c0[2], int nc[2]) {
  kv0[0] = 0;
  nkv[0] = static_cast<int>(sp.gpu_kv_groups);
  kv0[1] = nkv[0];
  nkv[1] = c.NKV - nkv[0];
  c0[0] = 0;
  nc[0] = static_cast<int>(sp.gpu_mlp_cols);
  c0[1] = nc[0];
  nc[1] = c.I - nc[0];
}

Backend& share_backend(int i, Backend& primary, Backend* secondary) {
  if (i == 1) return primary;
  if (!secondary) throw std::logic_error("a layer split needs the secondary (OpenCL) backend");
  return *secondary;
}

uint64_t us_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return b > a ? static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(b - a).count()) : 0;
}

// Runs share(0, secondary) and share(1, primary) for the active shares, at once, and returns when both are done.
// The secondary's share is issued first so that it runs while the primary works. Its time is measured from issue to
// completion by a helper thread that waits on it while this thread computes the primary's share: a wait here,
// after the primary's share, would only tell when the later of the two finished, and so would report a faster
// secondary as busy for as long as the primary. The thread exists only while both backends have a share.
template <class ShareFn>
void run_shares(const LayerCtx& c, Backend& primary, Backend* secondary, const bool active[2], ShareFn share) {
  using clock = std::chrono::steady_clock;
  if (!active[0]) {
    if (active[1]) share(1, primary);
    return;
  }
  const clock::time_point t0 = clock::now();
  share(0, share_backend(0, primary, secondary));  // for a synchronous backend, this is the whole share
  const clock::time_point t1 = clock::now();
  clock::time_point t2 = t1, finished;
  if (active[1]) {
    std::future<clock::time_point> done;
    try {
      done = std::async(std::launch::async, [secondary] {
        secondary->synchronize();
        return clock::now();
      });
    } catch (const std::system_error&) {
      // No thread to spare: wait after the primary's share, which reports the secondary busy until then.
    }
    share(1, primary);  // on an exception, ~future waits for the helper before the arena dies
    t2 = clock::now();
    if (done.valid()) {
      finished = done.get();  // rethrows the secondary's error
    } else {
      secondary->synchronize();
      finished = clock::now();
    }
  } else {
    secondary->synchronize();
    finished = clock::now();
  }
  const clock::time_point t3 = clock::now();
  if (c.secondary_time) {
    c.secondary_time->busy_us += us_between(t0, finished);
    c.secondary_time->host_us += us_between(t0, t1) + us_between(t2, t3);
  }
}

// dst = base + the partial outputs of the active shares, on the primary after both finished.
void sum_shares(Backend& primary, float* dst, const float* base, float* const parts[2], const bool active[2],
                size_t n) {
  const float* acc = base;
  for (int i = 0; i < 2; ++i) {
    if (!active[i]) continue;
    primary.residual_forward(dst, acc, parts[i], n);
    acc = dst;
  }
  if (acc == base && dst != base) std::memcpy(dst, base, n * 4);
}

}  // namespace

size_t alloc_layer_acts(LayerActs* la, const LayerCtx& c, const LayerSplit& sp) {
  int kv0[2], nkv[2], c0[2], nc[2];
  share_ranges(c, sp, kv0, nkv, c0, nc);
  const size_t N = size_t(c.N), C = size_t(c.C), R = size_t(c.R), G = size_t(heads_per_group(c));
  size_t total = 0;
  // Every one of these is written in full by layer_forward before it is read, so a reused buffer of the right size
  // is not cleared again.
  auto take = [&](std::vector<float>* v, size_t n) {
    total += n;
    if (la && v->size() != n) v->assign(n, 0.0f);
  };
  LayerActs dummy;
  LayerActs& a = la ? *la : dummy;
  take(&a.xn1, N * C);
  take(&a.rstd1, N);
  take(&a.h, N * C);
  take(&a.xn2, N * C);
  take(&a.rstd2, N);
  static const LoraModule kAttnModules[4] = {kQ, kK, kV, kO};
  static const LoraModule kMlpModules[3] = {kGate, kUp, kDown};
  for (int i = 0; i < 2; ++i) {
    AttnShare& s = a.attn[i];
    s.kv0 = kv0[i];
    s.nkv = nkv[i];
    const size_t nh = size_t(nkv[i]) * G, qn = nh * c.HD, kn = size_t(nkv[i]) * c.HD;
    take(&s.q, nkv[i] ? N * qn : 0);
    take(&s.k, nkv[i] ? N * kn : 0);
    take(&s.v, nkv[i] ? N * kn : 0);
    take(&s.y, nkv[i] ? N * qn : 0);
    take(&s.lse, nkv[i] ? size_t(c.B) * nh * c.T : 0);
    for (int j = 0; j < 4; ++j) take(&s.xa[j], nkv[i] && c.lora[kAttnModules[j]] ? N * R : 0);
    MlpShare& m = a.mlp[i];
    m.c0 = c0[i];
    m.nc = nc[i];
    for (std::vector<float>* v : {&m.g, &m.u, &m.s}) take(v, N * size_t(nc[i]));
    for (int j = 0; j < 3; ++j) take(&m.xa[j], nc[i] && c.lora[kMlpModules[j]] ? N * R : 0);
  }
  return total;
}

size_t layer_acts_floats(const LayerActs& la) {
  size_t n = la.x.capacity() + la.xn1.capacity() + la.rstd1.capacity() + la.h.capacity() + la.xn2.capacity() +
             la.rstd2.capacity();
  for (const AttnShare& s : la.attn) {
    n += s.q.capacity() + s.k.capacity() + s.v.capacity() + s.y.capacity() + s.lse.capacity();
    for (const std::vector<float>& v : s.xa) n += v.capacity();
  }
  for (const MlpShare& m : la.mlp) {
    n += m.g.capacity() + m.u.capacity() + m.s.capacity();
    for (const std::vector<float>& v : m.xa) n += v.capacity();
  }
  return n;
}

void layer_forward(const LayerCtx& c, Backend& primary, Backend* secondary, float* cur, LayerActs& la) {
  const size_t nC = size_t(c.N) * c.C;
  Arena arena;
  float* parts[2] = {arena.get(nC, false), arena.get(nC, false)};

  primary.rmsnorm_forward(la.xn1.data(), la.rstd1.data(), cur, c.w->ln1, c.N, c.C, c.eps);
  bool active[2] = {la.attn[0].nkv > 0, la.attn[1].nkv > 0};
  run_shares(c, primary, secondary, active, [&](int i, Backend& be) {
    Share s{be, arena, nullptr};
    attn_forward(s, c, la.xn1.data(), la.attn[i], parts[i]);
  });
  sum_shares(primary, la.h.data(), cur, parts, active, nC);

  primary.rmsnorm_forward(la.xn2.data(), la.rstd2.data(), la.h.data(), c.w->ln2, c.N, c.C, c.eps);
  active[0] = la.mlp[0].nc > 0;
  active[1] = la.mlp[1].nc > 0;
  run_shares(c, primary, secondary, active, [&](int i, Backend& be) {
    Share s{be, arena, nullptr};
    mlp_forward(s, c, la.xn2.data(), la.mlp[i], parts[i]);
  });
  sum_shares(primary, cur, la.h.data(), parts, active, nC);
}

void layer_backward(const LayerCtx& c, Backend& primary, Backend* secondary,
                    const std::array<LoraAdapter*, kNumLoraModules>& grads, float* dcur, const LayerActs& la) {
  const size_t nC = size_t(c.N) * c.C;
  Arena arena;
  std::vector<GradFold> folds[2];
  float* dxn[2] = {arena.get(nC, true), arena.get(nC, true)};

  // out = h + down(silu(gate(xn2)) * up(xn2)), xn2 = rms2(h)
  bool active[2] = {la.mlp[0].nc > 0, la.mlp[1].nc > 0};
  run_shares(c, primary, secondary, active, [&](int i, Backend& be) {
    Share s{be, arena, &folds[i]};
    mlp_backward(s, c, la.xn2.data(), dcur, la.mlp[i], dxn[i]);
  });
  if (active[0] && active[1]) primary.residual_forward(dxn[1], dxn[1], dxn[0], nC);
  float* dh = arena.get(nC, false);
  std::memcpy(dh, dcur, nC * 4);
  primary.rmsnorm_backward(dh, nullptr, active[1] ? dxn[1] : dxn[0], la.h.data(), c.w->ln2, la.rstd2.data(), c.N,
                           c.C);

  // h = x + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1))), xn1 = rms1(x)
  float* dxa[2] = {arena.get(nC, true), arena.get(nC, true)};
  active[0] = la.attn[0].nkv > 0;
  active[1] = la.attn[1].nkv > 0;
  run_shares(c, primary, secondary, active, [&](int i, Backend& be) {
    Share s{be, arena, &folds[i]};
    attn_backward(s, c, la.xn1.data(), dh, la.attn[i], dxa[i]);
  });
  if (active[0] && active[1]) primary.residual_forward(dxa[1], dxa[1], dxa[0], nC);
  std::memcpy(dcur, dh, nC * 4);
  primary.rmsnorm_backward(dcur, nullptr, active[1] ? dxa[1] : dxa[0], la.x.data(), c.w->ln1, la.rstd1.data(), c.N,
                           c.C);
  for (const auto& f : folds) apply_folds(f, grads, c.R);
}

double median_ms(Backend& be, int reps, const std::function<void()>& run) {
  run();
  be.synchronize();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    be.synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

ShareTimesMs time_shares(const LayerCtx& c, Backend& be, LayerActs& la, int reps) {
  const size_t nC = size_t(c.N) * c.C;
  ShareTimesMs t;
  std::vector<float> out(nC), dout(nC, 1e-3f), dxn(nC);
  std::vector<GradFold> folds;
  auto fresh = [&](std::function<void(Share&)> f) {
    return [&, f] {
      Arena arena;
      folds.clear();
      Share s{be, arena, &folds};
      f(s);
      be.synchronize();  // the arena dies here; nothing may still be reading it
    };
  };
  t.attn_forward = median_ms(be, reps, fresh([&](Share& s) { attn_forward(s, c, la.xn1.data(), la.attn[1], out.data()); }));
  t.attn_backward =
      median_ms(be, reps, fresh([&](Share& s) { attn_backward(s, c, la.xn1.data(), dout.data(), la.attn[1], dxn.data()); }));
  t.mlp_forward = median_ms(be, reps, fresh([&](Share& s) { mlp_forward(s, c, la.xn2.data(), la.mlp[1], out.data()); }));
  t.mlp_backward =
      median_ms(be, reps, fresh([&](Share& s) { mlp_backward(s, c, la.xn2.data(), dout.data(), la.mlp[1], dxn.data()); }));
  return t;
}

}  // namespace confidant::agent
