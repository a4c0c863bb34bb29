// Generic bodies of the matmul micro-kernels, instantiated once per SIMD level by matmul_<level>.cpp with a traits
// struct S that wraps that level's intrinsics:
//   S::V (register type), S::W (floats per register), zero(), load(p)/store(p, v) (64-byte aligned),
//   loadu(p), set1(x), add(a, b), fma(a, b, c) = a * b + c, hsum(v).
// The units are compiled with different -m flags, so no code here may become a symbol shared between them (the
// linker would keep one copy, possibly the AVX-512 one): these are templates whose every instantiation takes the
// unit's own traits type (declared in its anonymous namespace), plus one static function.
#pragma once
#include <cstddef>

namespace confidant::cpu {

// Broadcast-weight tile: mr output columns x (NVEC * S::W) activation rows held in registers for the whole k loop,
// so each loaded xp vector feeds MR FMAs and each broadcast weight feeds NVEC FMAs.
// The weight w(r, k) is w[r * kRowPitch + k] when kRowPitch > 0 (dequantised weight rows, forward) and
// w[k * w_pitch + r] otherwise (dequantised weight columns, backward). Both index patterns are one pointer plus
// constant offsets per k, so the broadcasts fold into the FMAs' memory operands on x86.
template <class S, int MR, int NVEC, int kRowPitch>
inline void tile_body(int kc, const float* w, size_t w_pitch, const float* xp, float* c, size_t ldc,
                      bool accumulate) {
  using V = typename S::V;
  constexpr int NV = NVEC * S::W;
  V acc[MR][NVEC];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NVEC; ++v) acc[r][v] = S::zero();
  for (int k = 0; k < kc; ++k) {
    V x[NVEC];
#pragma GCC unroll 8
    for (int v = 0; v < NVEC; ++v) x[v] = S::load(xp + size_t(k) * NV + v * S::W);
    const float* wk = kRowPitch > 0 ? w + k : w + size_t(k) * w_pitch;
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const V b = S::set1(kRowPitch > 0 ? wk[r * kRowPitch] : wk[r]);
#pragma GCC unroll 8
      for (int v = 0; v < NVEC; ++v) acc[r][v] = S::fma(b, x[v], acc[r][v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NVEC; ++v) {
      float* p = c + size_t(r) * ldc + v * S::W;
      S::store(p, accumulate ? S::add(S::load(p), acc[r][v]) : acc[r][v]);
    }
}

template <class S, int MR, int NVEC, int kRowPitch>
void tile_wrows(int kc, const float* w, const float* xp, float* c, size_t ldc, bool accumulate) {
  tile_body<S, MR, NVEC, kRowPitch>(kc, w, 0, xp, c, ldc, accumulate);
}

template <class S, int MR, int NVEC>
void tile_wcols(int kc, const float* w, size_t w_pitch, const float* xp, float* c, size_t ldc, bool accumulate) {
  tile_body<S, MR, NVEC, 0>(kc, w, w_pitch, xp, c, ldc, accumulate);
}

// Portable store_piece (see matmul_kernels.h): the transposition done one element at a time.
static inline void store_piece_scalar(const float* tile, size_t ldc, int rows, int cols, float* out, size_t ldo,
                               const float* bias, bool accumulate) {
  for (int n = 0; n < rows; ++n) {
    float* o = out + size_t(n) * ldo;
    for (int m = 0; m < cols; ++m) {
      const float v = tile[size_t(m) * ldc + n] + (bias ? bias[m] : 0.0f);
      o[m] = accumulate ? o[m] + v : v;
    }
  }
}

// ROWS activation rows against one weight run, two registers per step to hide FMA latency.
template <class S, int ROWS>
inline void dot_rows_n(const float* w, const float* x, size_t ldx, int n, float* acc) {
  using V = typename S::V;
  V a0[ROWS], a1[ROWS];
#pragma GCC unroll 8
  for (int j = 0; j < ROWS; ++j) a0[j] = a1[j] = S::zero();
  int k = 0;
  for (; k + 2 * S::W <= n; k += 2 * S::W) {
    const V w0 = S::loadu(w + k), w1 = S::loadu(w + k + S::W);
#pragma GCC unroll 8
    for (int j = 0; j < ROWS; ++j) {
      a0[j] = S::fma(w0, S::loadu(x + j * ldx + k), a0[j]);
      a1[j] = S::fma(w1, S::loadu(x + j * ldx + k + S::W), a1[j]);
    }
  }
  for (; k + S::W <= n; k += S::W) {
    const V w0 = S::loadu(w + k);
#pragma GCC unroll 8
    for (int j = 0; j < ROWS; ++j) a0[j] = S::fma(w0, S::loadu(x + j * ldx + k), a0[j]);
  }
#pragma GCC unroll 8
  for (int j = 0; j < ROWS; ++j) {
    float s = S::hsum(a0[j]) + S::hsum(a1[j]);
    for (int t = k; t < n; ++t) s += w[t] * x[j * ldx + t];
    acc[j] += s;
  }
}

template <class S>
void dot_rows(const float* w, const float* x, size_t ldx, int rows, int n, float* acc) {
  int j = 0;
  for (; j + 4 <= rows; j += 4) dot_rows_n<S, 4>(w, x + j * ldx, ldx, n, acc + j);
  for (; j < rows; ++j) dot_rows_n<S, 1>(w, x + j * ldx, ldx, n, acc + j);
}

// NACC independent FMA chains, enough to cover latency x issue ports on the targets (4 cycles x 2 ports = 8).
template <class S, int NACC>
double fma_loop(long iters) {
  using V = typename S::V;
  V acc[NACC];
  const V a = S::set1(0.999999f), b = S::set1(1e-7f);
#pragma GCC unroll 32
  for (int j = 0; j < NACC; ++j) acc[j] = S::set1(float(j));
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 32
    for (int j = 0; j < NACC; ++j) acc[j] = S::fma(acc[j], a, b);
  }
  V sum = acc[0];
#pragma GCC unroll 32
  for (int j = 1; j < NACC; ++j) sum = S::add(sum, acc[j]);
  volatile float sink = S::hsum(sum);  // keeps the loop alive
  (void)sink;
  return 2.0 * NACC * S::W * double(iters);
}

}  // namespace confidant::cpu
