// AVX2+FMA attention row kernels (attention_rows.h); compiled with -mavx2 -mfma, only called when the CPU has them.
// Eight-float ymm vectors, a whole 32-key block per pass: 8 accumulators + 4 operands + 2 broadcasts = 14 of the
// 16 registers.
#include <immintrin.h>

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

}  // namespace

const AttentionRowKernels& attention_row_kernels_avx2() {
  static const AttentionRowKernels k = {rows2_times_tile, axpy2_rows};
  return k;
}

}  // namespace confidant::cpu
