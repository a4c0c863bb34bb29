// Row-wise and elementwise ops of the CPU backend: RMSNorm, RoPE, SwiGLU, residual, AdamW. Threaded over rows (or
// flat ranges) with the pool; arithmetic in fp32 with 8-lane vectors where it is the hot loop. Small inputs run
// on the calling thread (see row_grain) because waking workers costs more than the op.
// Numerics follow src/ref/ (the spec) to a few ulp: the reference accumulates in double, these in fp32 except
// where noted; AdamW keeps the reference's double arithmetic since it is cheap next to the rest of a step.
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "cpu_ops.h"
#include "parallel.h"
#include "vec8.h"

namespace confidant::cpu {
namespace {

// Sum of a[i]*b[i] with eight lanes.
float dot_f(const float* a, const float* b, int n) {
  F8 acc = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) acc += load8(a + i) * load8(b + i);
  float s = hsum8(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// 1 / (1 + exp(-g)) for 8 lanes; exp8 clamps, so very negative g gives g / huge = 0 and very positive g gives 1.
inline F8 sigmoid8(const F8& g) { return 1.0f / (1.0f + exp8(-1.0f * g)); }
inline float sigmoid1(float g) { return 1.0f / (1.0f + std::exp(-g)); }

}  // namespace

// ------------------------------------------------------------------------------------------------------ rmsnorm

void rmsnorm_forward(ThreadPool& pool, float* out, float* rstd, const float* x, const float* w, int N, int C,
                     float eps) {
  pool.parallel_for(size_t(N), row_grain(C), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      const float* xn = x + n * C;
      float* on = out + n * C;
      // Mean of squares: fp32 lanes, summed in double at the end (C is at most a few thousand).
      const float r = float(1.0 / std::sqrt(double(dot_f(xn, xn, C)) / C + eps));
      rstd[n] = r;
      int c = 0;
      for (; c + 8 <= C; c += 8) store8(on + c, load8(xn + c) * r * load8(w + c));
      for (; c < C; ++c) on[c] = xn[c] * r * w[c];
    }
  });
}

void rmsnorm_backward(ThreadPool& pool, float* dx, float* dw, const float* dout, const float* x, const float* w,
                      const float* rstd, int N, int C) {
  // dx_j += r * (w_j dout_j - x_j * r^2 * mean_c(w_c dout_c x_c)), row-parallel.
  pool.parallel_for(size_t(N), row_grain(C), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      const float* xn = x + n * C;
      const float* gn = dout + n * C;
      float* dxn = dx + n * C;
      const float r = rstd[n];
      F8 acc = {};
      int c = 0;
      for (; c + 8 <= C; c += 8) acc += load8(w + c) * load8(gn + c) * load8(xn + c);
      float dot = hsum8(acc);
      for (; c < C; ++c) dot += w[c] * gn[c] * xn[c];
      const float kk = r * r * dot / C;
      c = 0;
      for (; c + 8 <= C; c += 8)
        store8(dxn + c, load8(dxn + c) + r * (load8(w + c) * load8(gn + c) - load8(xn + c) * kk));
      for (; c < C; ++c) dxn[c] += r * (w[c] * gn[c] - xn[c] * kk);
    }
  });
  if (!dw) return;
  // dw sums over rows, so split it by columns instead: each thread owns a column range and walks all rows.
  pool.parallel_for(size_t(C), std::max<size_t>(64, kMinElemsPerThread / std::max(1, N)), [&](size_t c0, size_t c1) {
    for (size_t n = 0; n < size_t(N); ++n) {
      const float* xn = x + n * C;
      const float* gn = dout + n * C;
      const float r = rstd[n];
      size_t c = c0;
      for (; c + 8 <= c1; c += 8) store8(dw + c, load8(dw + c) + load8(gn + c) * load8(xn + c) * r);
      for (; c < c1; ++c) dw[c] += gn[c] * xn[c] * r;
    }
  });
}

// --------------------------------------------------------------------------------------------------------- rope

namespace {

// cos/sin of angle (pos0 + t) * inv_freq[i] for t < T, i < HD/2, computed in double as the reference does.
struct RopeTable {
  int T, HD, pos0;
  std::vector<float> inv_freq;  // (HD/2), the key together with T and pos0
  std::vector<float> cs, sn;    // (T, HD/2)
};

// Every layer calls rope 4 times per step with the same (T, HD, pos0, inv_freq), so the last table is kept (keyed by
// the frequencies' values, not their address); the shared_ptr keeps it alive for a caller while another thread
// swaps in a different one.
std::shared_ptr<const RopeTable> rope_table(ThreadPool& pool, int T, int HD, int pos0, const float* inv_freq) {
  static std::mutex mu;
  static std::shared_ptr<const RopeTable> last;
  const int half = HD / 2;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (last && last->T == T && last->HD == HD && last->pos0 == pos0 &&
        std::equal(inv_freq, inv_freq + half, last->inv_freq.begin())) {
      return last;
    }
  }
  auto tab = std::make_shared<RopeTable>();
  tab->T = T, tab->HD = HD, tab->pos0 = pos0;
  tab->inv_freq.assign(inv_freq, inv_freq + half);
  tab->cs.resize(size_t(T) * half);
  tab->sn.resize(size_t(T) * half);
  pool.parallel_for(size_t(T), std::max(1, 4096 / std::max(1, half)), [&](size_t t0, size_t t1) {
    for (size_t t = t0; t < t1; ++t)
      for (int i = 0; i < half; ++i) {
        const double angle = double(pos0 + int(t)) * double(inv_freq[i]);
        tab->cs[t * half + i] = float(std::cos(angle));
        tab->sn[t * half + i] = float(std::sin(angle));
      }
  });
  std::lock_guard<std::mutex> lock(mu);
  last = tab;
  return tab;
}

// (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) with sin negated for the backward (R^T), accumulating or not.
template <bool kBackward>
void rope_apply(ThreadPool& pool, float* out, const float* in, int B, int T, int NH, int HD, int pos0,
                const float* inv_freq) {
  const std::shared_ptr<const RopeTable> tab = rope_table(pool, T, HD, pos0, inv_freq);
  const int half = HD / 2;
  pool.parallel_for(size_t(B) * T, row_grain(size_t(NH) * HD), [&](size_t r0, size_t r1) {
    for (size_t bt = r0; bt < r1; ++bt) {
      const size_t t = bt % T;
      const float* cs = tab->cs.data() + t * half;
      const float* sn = tab->sn.data() + t * half;
      for (int h = 0; h < NH; ++h) {
        const float* x = in + (bt * NH + h) * HD;
        float* y = out + (bt * NH + h) * HD;
        int i = 0;
        for (; i + 8 <= half; i += 8) {
          // Load both halves before storing: out == in is allowed.
          const F8 x1 = load8(x + i), x2 = load8(x + i + half), c = load8(cs + i);
          const F8 s = kBackward ? -1.0f * load8(sn + i) : load8(sn + i);
          const F8 y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
          if (kBackward) {
            store8(y + i, load8(y + i) + y1);
            store8(y + i + half, load8(y + i + half) + y2);
          } else {
            store8(y + i, y1);
            store8(y + i + half, y2);
          }
        }
        for (; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half], c = cs[i], s = kBackward ? -sn[i] : sn[i];
          const float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
          if (kBackward) {
            y[i] += y1;
            y[i + half] += y2;
          } else {
            y[i] = y1;
            y[i + half] = y2;
          }
        }
      }
    }
  });
}

}  // namespace

void rope_forward(ThreadPool& pool, float* out, const float* in, int B, int T, int NH, int HD, int pos0,
                  const float* inv_freq) {
  if (B <= 0 || T <= 0) return;
  rope_apply<false>(pool, out, in, B, T, NH, HD, pos0, inv_freq);
}

void rope_backward(ThreadPool& pool, float* din, const float* dout, int B, int T, int NH, int HD, int pos0,
                   const float* inv_freq) {
  if (B <= 0 || T <= 0) return;
  rope_apply<true>(pool, din, dout, B, T, NH, HD, pos0, inv_freq);
}

// ------------------------------------------------------------------------------------------------------- swiglu

void swiglu_forward(ThreadPool& pool, float* h, const float* g, const float* u, int N, int H) {
  pool.parallel_for(size_t(N) * H, kMinElemsPerThread, [&](size_t i0, size_t i1) {
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      const F8 gi = load8(g + i);
      store8(h + i, gi * sigmoid8(gi) * load8(u + i));
    }
    for (; i < i1; ++i) h[i] = g[i] * sigmoid1(g[i]) * u[i];
  });
}

void swiglu_backward(ThreadPool& pool, float* dg, float* du, const float* dh, const float* g, const float* u, int N,
                     int H) {
  // d silu/dg = s * (1 + g * (1 - s)), s = sigmoid(g).
  pool.parallel_for(size_t(N) * H, kMinElemsPerThread, [&](size_t i0, size_t i1) {
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      const F8 gi = load8(g + i), s = sigmoid8(gi), d = load8(dh + i);
      store8(dg + i, load8(dg + i) + d * load8(u + i) * s * (1.0f + gi * (1.0f - s)));
      store8(du + i, load8(du + i) + d * gi * s);
    }
    for (; i < i1; ++i) {
      const float s = sigmoid1(g[i]);
      dg[i] += dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
      du[i] += dh[i] * g[i] * s;
    }
  });
}

// ----------------------------------------------------------------------------------------------------- residual

void residual_forward(ThreadPool& pool, float* out, const float* a, const float* b, size_t n) {
  pool.parallel_for(n, kMinElemsPerThread, [&](size_t i0, size_t i1) {
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) store8(out + i, load8(a + i) + load8(b + i));  // in-place safe: load then store
    for (; i < i1; ++i) out[i] = a[i] + b[i];
  });
}

void residual_backward(ThreadPool& pool, float* da, float* db, const float* dout, size_t n) {
  pool.parallel_for(n, kMinElemsPerThread, [&](size_t i0, size_t i1) {
    size_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      const F8 d = load8(dout + i);
      store8(da + i, load8(da + i) + d);
      store8(db + i, load8(db + i) + d);
    }
    for (; i < i1; ++i) {
      da[i] += dout[i];
      db[i] += dout[i];
    }
  });
}

// -------------------------------------------------------------------------------------------------------- adamw

void adamw_step(ThreadPool& pool, float* param, const float* grad, float* m, float* v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale) {
  // Same arithmetic as ref::adamw_step (double; bias corrections in double since 1 - beta2^t loses digits in fp32).
  const double bc1 = 1.0 - std::pow(double(beta1), t);
  const double bc2 = 1.0 - std::pow(double(beta2), t);
  const double decay = 1.0 - double(lr) * weight_decay;
  pool.parallel_for(n, kMinElemsPerThread / 4, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      const double g = double(grad[i]) * grad_scale;
      const double mi = beta1 * double(m[i]) + (1.0 - beta1) * g;
      const double vi = beta2 * double(v[i]) + (1.0 - beta2) * g * g;
      m[i] = float(mi);
      v[i] = float(vi);
      param[i] = float(double(param[i]) * decay - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps));
    }
  });
}

}  // namespace confidant::cpu
