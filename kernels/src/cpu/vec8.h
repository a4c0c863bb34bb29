// Eight-lane float vectors for the CPU ops (attention, softmax rows, elementwise), written with the GCC/Clang vector
// extension so the same source becomes SSE2 on x86-64 and NEON (with fma) on aarch64, without depending on the
// auto-vectoriser (the kernels directory builds at -O2, where GCC 12 vectorises almost nothing with run-time trip
// counts). Other compilers get a plain-array fallback with the same interface (correct, just slower).
// Not a general SIMD library: only what the ops need. No run-time dispatch: x86 builds get 128-bit SSE2 (plus FMA
// only when the build enables it, e.g. -march=native), the weak spot on desktops; phones get NEON fma.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#if (defined(__GNUC__) || defined(__clang__)) && !defined(CONFIDANT_VEC8_SCALAR)
#if defined(__aarch64__)
#include <arm_neon.h>
#elif defined(__FMA__)
#include <immintrin.h>
#endif
#endif

namespace confidant::cpu {

// CONFIDANT_VEC8_SCALAR forces the fallback (to check that it still compiles).
#if (defined(__GNUC__) || defined(__clang__)) && !defined(CONFIDANT_VEC8_SCALAR)
#define CONFIDANT_VEC8_NATIVE 1
// F8 is a pair of 16-byte vectors (SSE xmm / NEON q registers), not one 32-byte vector: without AVX, GCC lowers a
// 32-byte vector type through stack temporaries (measured ~5x slower), while a struct of two 16-byte vectors stays
// in registers. Helpers are force-inlined so they cost nothing at -O2.
#define CONFIDANT_V8 static inline __attribute__((always_inline))
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));
struct F8 {
  F4 lo, hi;
};

CONFIDANT_V8 F8 operator+(F8 a, F8 b) { return {a.lo + b.lo, a.hi + b.hi}; }
CONFIDANT_V8 F8 operator-(F8 a, F8 b) { return {a.lo - b.lo, a.hi - b.hi}; }
CONFIDANT_V8 F8 operator*(F8 a, F8 b) { return {a.lo * b.lo, a.hi * b.hi}; }
CONFIDANT_V8 F8 operator/(F8 a, F8 b) { return {a.lo / b.lo, a.hi / b.hi}; }
CONFIDANT_V8 F8 operator+(F8 a, float b) { return {a.lo + b, a.hi + b}; }
CONFIDANT_V8 F8 operator-(F8 a, float b) { return {a.lo - b, a.hi - b}; }
CONFIDANT_V8 F8 operator*(F8 a, float b) { return {a.lo * b, a.hi * b}; }
CONFIDANT_V8 F8 operator+(float a, F8 b) { return {a + b.lo, a + b.hi}; }
CONFIDANT_V8 F8 operator-(float a, F8 b) { return {a - b.lo, a - b.hi}; }
CONFIDANT_V8 F8 operator*(float a, F8 b) { return {a * b.lo, a * b.hi}; }
CONFIDANT_V8 F8 operator/(float a, F8 b) { return {a / b.lo, a / b.hi}; }
CONFIDANT_V8 F8& operator+=(F8& a, F8 b) { return a = a + b; }
CONFIDANT_V8 F8& operator-=(F8& a, F8 b) { return a = a - b; }
CONFIDANT_V8 F8& operator*=(F8& a, F8 b) { return a = a * b; }
CONFIDANT_V8 F8& operator*=(F8& a, float b) { return a = a * b; }

// a * b + c, fused where the target has it: the kernels build as ISO C++ (-std=c++17), where GCC does not contract
// a*b+c into fma by itself, and NEON's fma doubles the multiply-add rate of the attention inner loops on phones.
CONFIDANT_V8 F4 fma4(F4 a, F4 b, F4 c) {
#if defined(__aarch64__)
  return (F4)vfmaq_f32((float32x4_t)c, (float32x4_t)a, (float32x4_t)b);
#elif defined(__FMA__)
  return (F4)_mm_fmadd_ps((__m128)a, (__m128)b, (__m128)c);
#else
  return a * b + c;
#endif
}
CONFIDANT_V8 F8 fma8(F8 a, F8 b, F8 c) { return {fma4(a.lo, b.lo, c.lo), fma4(a.hi, b.hi, c.hi)}; }

CONFIDANT_V8 F8 load8(const float* p) {
  F8 v;
  std::memcpy(&v.lo, p, 16);  // unaligned loads
  std::memcpy(&v.hi, p + 4, 16);
  return v;
}
CONFIDANT_V8 void store8(float* p, F8 v) {
  std::memcpy(p, &v.lo, 16);
  std::memcpy(p + 4, &v.hi, 16);
}
CONFIDANT_V8 F8 splat8(float x) {
  const F4 v = {x, x, x, x};
  return {v, v};
}
CONFIDANT_V8 F8 max8(F8 a, F8 b) { return {a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi}; }
CONFIDANT_V8 float hsum8(F8 v) {
  const F4 s = v.lo + v.hi;
  return (s[0] + s[2]) + (s[1] + s[3]);
}
CONFIDANT_V8 float hmax8(F8 v) {
  const F4 m = v.lo > v.hi ? v.lo : v.hi;
  const float a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
  return a > b ? a : b;
}

// exp(x) for x <= ~88, Cephes expf polynomial (about 1 ulp); x < -87 (incl. -inf for masked scores) gives exactly 0,
// which the causal mask relies on. NaN stays NaN, so a diverging step still shows up in the loss.
CONFIDANT_V8 F4 exp4(F4 x) {
  const I4 drop = x < -87.0f;  // all-ones lanes are flushed to 0 (false for NaN)
  const F4 lo = {-87.0f, -87.0f, -87.0f, -87.0f}, hi = {88.0f, 88.0f, 88.0f, 88.0f};
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  // n = floor(x * log2(e) + 0.5); conversion truncates toward zero, so step negatives down by one.
  const F4 z = x * 1.44269504088896341f + 0.5f;
  F4 n = __builtin_convertvector(__builtin_convertvector(z, I4), F4);
  n += __builtin_convertvector((I4)(n > z), F4);  // true lanes are -1
  // r = x - n*ln2 in two parts so r stays exact.
  const F4 r = x - n * 0.693359375f + n * 2.12194440e-4f;
  F4 y = 1.9875691500e-4f * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const I4 pow2n = (__builtin_convertvector(n, I4) + 127) << 23;
  F4 scale;
  std::memcpy(&scale, &pow2n, sizeof scale);
  y *= scale;
  I4 bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits &= ~drop;
  std::memcpy(&y, &bits, sizeof y);
  return y;
}
CONFIDANT_V8 F8 exp8(F8 x) { return {exp4(x.lo), exp4(x.hi)}; }

#else  // portable fallback: same interface, scalar loops

struct F8 {
  float v[8];
  float& operator[](int i) { return v[i]; }
  float operator[](int i) const { return v[i]; }
};
#define CONFIDANT_F8_OP(op)                                      \
  inline F8 operator op(F8 a, F8 b) {                            \
    for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] op b.v[i];       \
    return a;                                                    \
  }                                                              \
  inline F8 operator op(F8 a, float b) {                         \
    for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] op b;            \
    return a;                                                    \
  }                                                              \
  inline F8 operator op(float a, F8 b) {                         \
    for (int i = 0; i < 8; ++i) b.v[i] = a op b.v[i];            \
    return b;                                                    \
  }                                                              \
  inline F8& operator op##=(F8& a, F8 b) { return a = a op b; }  \
  inline F8& operator op##=(F8& a, float b) { return a = a op b; }
CONFIDANT_F8_OP(+)
CONFIDANT_F8_OP(-)
CONFIDANT_F8_OP(*)
CONFIDANT_F8_OP(/)
#undef CONFIDANT_F8_OP

inline F8 load8(const float* p) {
  F8 v;
  std::memcpy(v.v, p, sizeof v.v);
  return v;
}
inline void store8(float* p, F8 v) { std::memcpy(p, v.v, sizeof v.v); }
inline F8 splat8(float x) {
  F8 v;
  for (float& e : v.v) e = x;
  return v;
}
inline F8 max8(F8 a, F8 b) {
  for (int i = 0; i < 8; ++i) a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
  return a;
}
inline float hsum8(F8 v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
inline float hmax8(F8 v) {
  float m = v[0];
  for (int i = 1; i < 8; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
inline F8 exp8(F8 x) {
  for (float& e : x.v) e = e < -87.0f ? 0.0f : std::exp(e);
  return x;
}
inline F8 fma8(F8 a, F8 b, F8 c) { return a * b + c; }

#endif

}  // namespace confidant::cpu
