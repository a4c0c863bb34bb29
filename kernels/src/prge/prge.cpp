// The P-RGE normal stream (prge.h): Philox blocks -> Box–Muller with a libm-free ln/sin/cos, so the bits are the
// same on x86_64, arm64 and in the Python/TypeScript ports. Not the generator itself (philox.cpp).
#include "confidant/prge.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <stdexcept>

// Bit reproducibility needs every double operation rounded on its own: no fma contraction, no reassociation, no
// extended precision. GCC contracts a * b + c into fma on arm64 by default, even with -std=c++17, so the build
// also passes -ffp-contract=off for this file (belt and braces with the pragmas).
#if defined(__FAST_MATH__)
#error "prge.cpp must not be compiled with -ffast-math: the z stream would differ between machines"
#endif
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "prge.cpp needs FLT_EVAL_METHOD == 0 (SSE2/NEON doubles, not x87 extended precision)"
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace confidant {

namespace {

constexpr double kSqrt2 = 0x1.6a09e667f3bcdp+0;   // sqrt(2) rounded to nearest
constexpr double kLn2 = 0x1.62e42fefa39efp-1;     // ln(2) rounded to nearest
constexpr double kPi2m32 = 0x1.921fb54442d18p-31; // (pi rounded to nearest) * 2^-32, exact scaling

// L[k] = 1/(2k+1): ln m = 2 atanh(s) = 2 s sum_k s^(2k) / (2k+1), |s| <= 0.1716, truncation < 1e-19.
constexpr double kL[12] = {1.0,        1.0 / 3.0,  1.0 / 5.0,  1.0 / 7.0,  1.0 / 9.0,  1.0 / 11.0,
                           1.0 / 13.0, 1.0 / 15.0, 1.0 / 17.0, 1.0 / 19.0, 1.0 / 21.0, 1.0 / 23.0};
// Taylor coefficients on |a| <= pi/4: S[k] = (-1)^k/(2k+1)!, C[k] = (-1)^k/(2k)!; truncation < 1e-19.
constexpr double kS[9] = {1.0,
                          -1.0 / 6.0,
                          1.0 / 120.0,
                          -1.0 / 5040.0,
                          1.0 / 362880.0,
                          -1.0 / 39916800.0,
                          1.0 / 6227020800.0,
                          -1.0 / 1307674368000.0,
                          1.0 / 355687428096000.0};
constexpr double kC[9] = {1.0,
                          -1.0 / 2.0,
                          1.0 / 24.0,
                          -1.0 / 720.0,
                          1.0 / 40320.0,
                          -1.0 / 3628800.0,
                          1.0 / 479001600.0,
                          -1.0 / 87178291200.0,
                          1.0 / 20922789888000.0};

inline int floor_log2(uint64_t v) {  // v > 0
#if defined(__GNUC__) || defined(__clang__)
  return 63 - __builtin_clzll(v);
#else
  int e = 0;
  while (v >>= 1) ++e;
  return e;
#endif
}

inline double pow2(int e) {  // 2^e for -1022 <= e <= 1023, exact
  const uint64_t bits = uint64_t(1023 + e) << 52;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// Elements 4b .. 4b+3 of the stream.
inline void block4(float out[4], uint64_t b, const std::array<uint32_t, 2>& key, uint32_t step, uint32_t query,
                   uint32_t param_id) {
  const std::array<uint32_t, 4> x = philox4x32_10({uint32_t(b), param_id, query, step}, key);
  double z0, z1, z2, z3;
  prge_normal_pair(x[0], x[1], &z0, &z1);
  prge_normal_pair(x[2], x[3], &z2, &z3);
  out[0] = static_cast<float>(z0);
  out[1] = static_cast<float>(z1);
  out[2] = static_cast<float>(z2);
  out[3] = static_cast<float>(z3);
}

constexpr uint64_t kMaxElements = uint64_t(1) << 34;  // the block index is 32 bits

}  // namespace

double prge_ln_u32(uint32_t k1) {
  const uint64_t v = 2 * uint64_t(k1) + 1;  // u1 = v 2^-33
  int e = floor_log2(v);
  double m = static_cast<double>(v) * pow2(-e);  // [1, 2), exact (v has at most 33 bits)
  if (m > kSqrt2) {
    m = m * 0.5;
    e = e + 1;
  }
  const double s = (m - 1.0) / (m + 1.0);  // m - 1 and m + 1 are exact
  const double s2 = s * s;
  double p = kL[11];
  for (int k = 10; k >= 0; --k) p = p * s2 + kL[k];
  const double t = s * p;
  return static_cast<double>(e - 33) * kLn2 + (t + t);
}

void prge_sincos_u32(uint32_t k2, double* sin_t, double* cos_t) {
  const uint64_t w = 2 * uint64_t(k2) + 1;  // theta = 2 pi w 2^-33: quadrant from the top bits, exactly
  uint32_t q = uint32_t(w >> 31);
  int64_t j = int64_t(w & 0x7fffffffu);
  if (j > (int64_t(1) << 30)) {
    j -= int64_t(1) << 31;
    q = (q + 1) & 3;
  }
  const double a = static_cast<double>(j) * kPi2m32;
  const double a2 = a * a;
  double ps = kS[8], pc = kC[8];
  for (int k = 7; k >= 0; --k) {
    ps = ps * a2 + kS[k];
    pc = pc * a2 + kC[k];
  }
  const double sa = a * ps, ca = pc;
  switch (q) {
    case 0: *cos_t = ca, *sin_t = sa; break;
    case 1: *cos_t = -sa, *sin_t = ca; break;
    case 2: *cos_t = -ca, *sin_t = -sa; break;
    default: *cos_t = sa, *sin_t = -ca; break;
  }
}

void prge_normal_pair(uint32_t k1, uint32_t k2, double* z0, double* z1) {
  const double r = std::sqrt(-2.0 * prge_ln_u32(k1));  // IEEE sqrt is correctly rounded everywhere
  double s, c;
  prge_sincos_u32(k2, &s, &c);
  *z0 = r * c;
  *z1 = r * s;
}

void prge_fill_z_range(float* z, uint64_t first, size_t n, uint64_t seed, uint32_t step, uint32_t query,
                       uint32_t param_id) {
  if (n == 0) return;
  if (first > kMaxElements || uint64_t(n) > kMaxElements - first) {
    throw std::length_error("prge_fill_z_range: the z stream of one tensor has at most 2^34 elements");
  }
  const std::array<uint32_t, 2> key = {uint32_t(seed), uint32_t(seed >> 32)};
  uint64_t b = first / 4;
  size_t done = 0;
  float buf[4];
  if (first % 4 != 0) {  // partial leading block
    block4(buf, b++, key, step, query, param_id);
    for (size_t o = first % 4; o < 4 && done < n; ++o) z[done++] = buf[o];
  }
  for (; n - done >= 4; done += 4) block4(z + done, b++, key, step, query, param_id);
  if (done < n) {  // partial trailing block
    block4(buf, b, key, step, query, param_id);
    for (size_t o = 0; done < n; ++o) z[done++] = buf[o];
  }
}

void prge_fill_z(float* z, size_t n, uint64_t seed, uint32_t step, uint32_t query, uint32_t param_id) {
  prge_fill_z_range(z, 0, n, seed, step, query, param_id);
}

void prge_axpy_z(float* x, size_t n, float alpha, uint64_t seed, uint32_t step, uint32_t query, uint32_t param_id) {
  constexpr size_t kTile = 256;
  float zt[kTile];
  for (size_t j0 = 0; j0 < n; j0 += kTile) {
    const size_t len = n - j0 < kTile ? n - j0 : kTile;
    prge_fill_z_range(zt, j0, len, seed, step, query, param_id);
    for (size_t j = 0; j < len; ++j) {
      const float d = alpha * zt[j];
      x[j0 + j] = x[j0 + j] + d;
    }
  }
}

void prge_update(float* x, size_t n, const float* g, uint32_t q, float lr, uint64_t seed, uint32_t step,
                 uint32_t param_id) {
  if (q == 0) throw std::invalid_argument("prge_update: needs at least one query (q >= 1)");
  constexpr size_t kTile = 256;
  float zt[kTile];
  double acc[kTile];
  for (size_t j0 = 0; j0 < n; j0 += kTile) {
    const size_t len = n - j0 < kTile ? n - j0 : kTile;
    for (size_t j = 0; j < len; ++j) acc[j] = 0.0;
    for (uint32_t i = 0; i < q; ++i) {
      prge_fill_z_range(zt, j0, len, seed, step, i, param_id);
      const double gi = g[i];
      for (size_t j = 0; j < len; ++j) acc[j] = acc[j] + gi * static_cast<double>(zt[j]);
    }
    for (size_t j = 0; j < len; ++j) {
      const double mean = acc[j] / static_cast<double>(q);
      x[j0 + j] = static_cast<float>(static_cast<double>(x[j0 + j]) - static_cast<double>(lr) * mean);
    }
  }
}

}  // namespace confidant
