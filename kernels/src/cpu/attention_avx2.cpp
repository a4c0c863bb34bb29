// AVX2+FMA attention row kernels (attention_rows.h); compiled with -mavx2 -mfma, only called when the CPU has them.
// Eight-float ymm vectors, a whole 32-key block per pass: 8 accumulators + 4 operands + 2 broadcasts = 14 of the
// 16 registers.
#include <immintrin.h>

#include <cmath>

#include "attention_rows.h"

namespace confidant::cpu {
namespace {

constexpr int kVecs = kAttnBlock / 8;
static_assert(kVecs == 4, "the kernels below unroll a 32-key block as four vectors");

void rows2_times_tile(float* s0, float* s1, const float* x0, const float* x1, const float* tile, int HD) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  for (int d = 0; d < HD; ++d) {
    const float* col = tile + d * kAttnBlock;
    const __m256 t0 = _mm256_loadu_ps(col), t1 = _mm256_loadu_ps(col + 8), t2 = _mm256_loadu_ps(col + 16),
                 t3 = _mm256_loadu_ps(col + 24);
    const __m256 u = _mm256_broadcast_ss(x0 + d), w = _mm256_broadcast_ss(x1 + d);
    a0 = _mm256_fmadd_ps(u, t0, a0);
    a1 = _mm256_fmadd_ps(u, t1, a1);
    a2 = _mm256_fmadd_ps(u, t2, a2);
    a3 = _mm256_fmadd_ps(u, t3, a3);
    b0 = _mm256_fmadd_ps(w, t0, b0);
    b1 = _mm256_fmadd_ps(w, t1, b1);
    b2 = _mm256_fmadd_ps(w, t2, b2);
    b3 = _mm256_fmadd_ps(w, t3, b3);
  }
  _mm256_storeu_ps(s0, a0);
  _mm256_storeu_ps(s0 + 8, a1);
  _mm256_storeu_ps(s0 + 16, a2);
  _mm256_storeu_ps(s0 + 24, a3);
  _mm256_storeu_ps(s1, b0);
  _mm256_storeu_ps(s1 + 8, b1);
  _mm256_storeu_ps(s1 + 16, b2);
  _mm256_storeu_ps(s1 + 24, b3);
}

void axpy2_rows(float* y0, float* y1, const float* c0, const float* c1, const float* rows, int n, int HD) {
  int c = 0;
  for (; c + 32 <= HD; c += 32) {
    __m256 a0 = _mm256_loadu_ps(y0 + c), a1 = _mm256_loadu_ps(y0 + c + 8), a2 = _mm256_loadu_ps(y0 + c + 16),
           a3 = _mm256_loadu_ps(y0 + c + 24);
    __m256 b0 = _mm256_loadu_ps(y1 + c), b1 = _mm256_loadu_ps(y1 + c + 8), b2 = _mm256_loadu_ps(y1 + c + 16),
           b3 = _mm256_loadu_ps(y1 + c + 24);
    for (int j = 0; j < n; ++j) {
      const float* r = rows + j * HD + c;
      const __m256 r0 = _mm256_loadu_ps(r), r1 = _mm256_loadu_ps(r + 8), r2 = _mm256_loadu_ps(r + 16),
                   r3 = _mm256_loadu_ps(r + 24);
      const __m256 u = _mm256_broadcast_ss(c0 + j), w = _mm256_broadcast_ss(c1 + j);
      a0 = _mm256_fmadd_ps(u, r0, a0);
      a1 = _mm256_fmadd_ps(u, r1, a1);
      a2 = _mm256_fmadd_ps(u, r2, a2);
      a3 = _mm256_fmadd_ps(u, r3, a3);
      b0 = _mm256_fmadd_ps(w, r0, b0);
      b1 = _mm256_fmadd_ps(w, r1, b1);
      b2 = _mm256_fmadd_ps(w, r2, b2);
      b3 = _mm256_fmadd_ps(w, r3, b3);
    }
    _mm256_storeu_ps(y0 + c, a0);
    _mm256_storeu_ps(y0 + c + 8, a1);
    _mm256_storeu_ps(y0 + c + 16, a2);
    _mm256_storeu_ps(y0 + c + 24, a3);
    _mm256_storeu_ps(y1 + c, b0);
    _mm256_storeu_ps(y1 + c + 8, b1);
    _mm256_storeu_ps(y1 + c + 16, b2);
    _mm256_storeu_ps(y1 + c + 24, b3);
  }
  for (; c + 8 <= HD; c += 8) {
    __m256 a = _mm256_loadu_ps(y0 + c), b = _mm256_loadu_ps(y1 + c);
    for (int j = 0; j < n; ++j) {
      const __m256 r = _mm256_loadu_ps(rows + j * HD + c);
      a = _mm256_fmadd_ps(_mm256_broadcast_ss(c0 + j), r, a);
      b = _mm256_fmadd_ps(_mm256_broadcast_ss(c1 + j), r, b);
    }
    _mm256_storeu_ps(y0 + c, a);
    _mm256_storeu_ps(y1 + c, b);
  }
  for (; c < HD; ++c) {  // HD not a multiple of 8
    float a = y0[c], b = y1[c];
    for (int j = 0; j < n; ++j) {
      a += c0[j] * rows[j * HD + c];
      b += c1[j] * rows[j * HD + c];
    }
    y0[c] = a;
    y1[c] = b;
  }
}

// exp(x) for x <= ~88: the Cephes polynomial of vec8.h's exp4, eight lanes; x < -87 (incl. -inf for masked
// scores) gives exactly 0, NaN stays NaN.
__m256 exp8(__m256 x) {
  const __m256 drop = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);  // false for NaN
  x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);  // max/min return their second operand when it is NaN
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  // r = x - n*ln2 in two parts so r stays exact.
  const __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x));
  __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
  return _mm256_andnot_ps(drop, y);
}

float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

void softmax_step(float* s, int n_valid, float* m, float* l, float* acc_row, int HD) {
  for (int j = n_valid; j < kAttnBlock; ++j) s[j] = -INFINITY;
  __m256 v[kVecs];
  for (int c = 0; c < kVecs; ++c) v[c] = _mm256_loadu_ps(s + 8 * c);
  const float m_new = std::fmax(*m, hmax8(_mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]))));
  const __m256 mv = _mm256_set1_ps(m_new);
  __m256 sum = _mm256_setzero_ps();
  for (int c = 0; c < kVecs; ++c) {
    const __m256 p = exp8(_mm256_sub_ps(v[c], mv));  // masked -inf scores give exactly 0
    _mm256_storeu_ps(s + 8 * c, p);
    sum = _mm256_add_ps(sum, p);
  }
  const float alpha = std::exp(*m - m_new);  // rescales what was accumulated under the old max (0 at first)
  *l = *l * alpha + hsum8(sum);
  if (alpha != 1.0f) {
    const __m256 a = _mm256_set1_ps(alpha);
    int d = 0;
    for (; d + 8 <= HD; d += 8) _mm256_storeu_ps(acc_row + d, _mm256_mul_ps(_mm256_loadu_ps(acc_row + d), a));
    for (; d < HD; ++d) acc_row[d] *= alpha;
  }
  *m = m_new;
}

void probs_and_ds(float* s, float* dp, int n_valid, float lse, float D, float scale) {
  for (int j = n_valid; j < kAttnBlock; ++j) s[j] = -INFINITY;
  const __m256 sc = _mm256_set1_ps(scale), l = _mm256_set1_ps(lse), d = _mm256_set1_ps(D);
  for (int c = 0; c < kVecs; ++c) {
    const __m256 p = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(s + 8 * c), sc, l));  // masked: -inf -> 0
    _mm256_storeu_ps(s + 8 * c, p);
    _mm256_storeu_ps(dp + 8 * c, _mm256_mul_ps(_mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(dp + 8 * c), d)), sc));
  }
}

}  // namespace

const AttentionRowKernels& attention_row_kernels_avx2() {
  static const AttentionRowKernels k = {rows2_times_tile, axpy2_rows, softmax_step, probs_and_ds};
  return k;
}

}  // namespace confidant::cpu
