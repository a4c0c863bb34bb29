// P-RGE perturbations: a counter-based stream of standard normals z keyed by (seed, step, query, parameter id), so
// every stage regenerates the same directions without storing or sending them. Not the perturbed forward itself.
//
// The stream is defined bit for bit below so the TypeScript host or a checkpoint tool can reproduce it; it is the
// same on every IEEE 754 machine (x86_64, arm64, armv7) because it uses only +, -, *, /, sqrt and integer ops
// (no libm: glibc, bionic and V8 disagree in the last ulp of log/sin/cos), in double precision, each operation
// rounded to nearest, no fused multiply-add. GCC fuses a * b + c on arm64 by default, which changes the last bit of
// the double in ~1 of 15 normal pairs (and so, rarely, a float): prge.cpp turns contraction off with pragmas and
// -ffp-contract=off, and refuses -ffast-math and x87 extended precision.
//
// ---- Philox4x32-10 (Salmon et al., SC'11; Random123) ----
//   mulhilo(M, x) = (hi32, lo32) of the 64-bit product M * x
//   round:  (h0, l0) = mulhilo(0xD2511F53, c0); (h1, l1) = mulhilo(0xCD9E8D57, c2);
//           c = (h1 ^ c1 ^ k0, l1, h0 ^ c3 ^ k1, l0)
//   10 rounds; between consecutive rounds the key is bumped: k0 += 0x9E3779B9, k1 += 0xBB67AE85 (mod 2^32).
//
// ---- The z stream of one B tensor (n elements, row-major) ----
//   key     = (seed & 0xffffffff, seed >> 32)
//   block b = philox4x32_10(counter = (b, param_id, query, step), key) = (x0, x1, x2, x3)
//   z[4b + 0], z[4b + 1] = normal_pair(x0, x1);  z[4b + 2], z[4b + 3] = normal_pair(x2, x3)
//   (the last block is truncated when n % 4 != 0; a stream has 2^34 elements: the functions below throw
//   std::length_error past that).
//
//   normal_pair(k1, k2) is Box–Muller, u1 = (k1 + 0.5) 2^-32, u2 = (k2 + 0.5) 2^-32, both in (0, 1):
//     r = sqrt(-2 ln u1), theta = 2 pi u2, returns ((float)(r cos theta), (float)(r sin theta)),
//   with ln, cos and sin evaluated exactly as follows (all double; the L, S, C constants are the exact rationals
//   rounded to the nearest double, e.g. in C `1.0 / 6.0`). |z| <= 6.764 (u1 = 2^-33). Error of the double result
//   vs the true Box–Muller value: < 1e-15 absolute (8.2e-16 measured against mpmath at 120 bits), so a float z
//   differs from the correctly rounded Box–Muller value only when that lies within 1e-15 of a rounding boundary
//   (about 1 in 10^8).
//
//   ln u1:  v = 2 k1 + 1 (an odd integer < 2^33), e = floor(log2 v), m = v * 2^-e (exact, in [1, 2));
//           if m > SQRT2 (0x1.6a09e667f3bcdp+0): m = m * 0.5, e = e + 1.
//           s = (m - 1) / (m + 1); s2 = s * s;
//           p = L[11]; for k = 10 .. 0: p = p * s2 + L[k];        L[k] = 1 / (2k + 1)
//           t = s * p; ln u1 = (double)(e - 33) * LN2 + (t + t);  LN2 = 0x1.62e42fefa39efp-1
//           r = sqrt(-2.0 * ln u1)
//   sincos: w = 2 k2 + 1 (odd, < 2^33; theta = 2 pi w / 2^33); quadrant q = w >> 31; j = w & 0x7fffffff;
//           if j > 2^30: j = j - 2^31 (now negative), q = (q + 1) & 3.     (|j| < 2^30, so |a| < pi/4)
//           a = (double)j * PI_2M32; a2 = a * a;     PI_2M32 = (pi rounded to double) * 2^-32 = 0x1.921fb54442d18p-31
//           ps = S[8]; for k = 7 .. 0: ps = ps * a2 + S[k]; sin a = a * ps;   S[k] = (-1)^k / (2k + 1)!
//           pc = C[8]; for k = 7 .. 0: pc = pc * a2 + C[k]; cos a = pc;       C[k] = (-1)^k / (2k)!
//           (cos theta, sin theta) = q 0: (cos a, sin a)   q 1: (-sin a, cos a)
//                                    q 2: (-cos a, -sin a) q 3: (sin a, -cos a)
//           z0 = (float)(r * cos theta), z1 = (float)(r * sin theta)
//
// Reference implementation: test/fixtures/prge/make_prge_golden.py (Python floats are IEEE doubles).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace confidant {

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// The building blocks of normal_pair above, exposed for tests and for ports (OpenCL, TypeScript).
double prge_ln_u32(uint32_t k1);                                // ln((k1 + 0.5) 2^-32)
void prge_sincos_u32(uint32_t k2, double* sin_t, double* cos_t);  // theta = 2 pi (k2 + 0.5) 2^-32
// Box–Muller in double, before the final rounding to float: z0 = r cos theta, z1 = r sin theta.
void prge_normal_pair(uint32_t k1, uint32_t k2, double* z0, double* z1);

// z (n) = elements [0, n) of the stream of (seed, step, query, param_id).
void prge_fill_z(float* z, size_t n, uint64_t seed, uint32_t step, uint32_t query, uint32_t param_id);
// z (n) = elements [first, first + n) of the same stream (any first, not only multiples of 4): tiles of a tensor.
void prge_fill_z_range(float* z, uint64_t first, size_t n, uint64_t seed, uint32_t step, uint32_t query,
                       uint32_t param_id);

// x (n) += alpha * z, element by element in float: x[j] = x[j] + (alpha * z[j]), two roundings, no fma; z is
// generated a few blocks at a time, never in full. The perturbed copy B + eps z_i is copy(B) then alpha = +-eps.
void prge_axpy_z(float* x, size_t n, float alpha, uint64_t seed, uint32_t step, uint32_t query, uint32_t param_id);

// P-RGE update of one tensor, x <- x - lr * mean_i(g_i z_i) over queries i = 0 .. q-1 (g has q entries), with z_i
// the float stream of (seed, step, i, param_id), evaluated per element in double:
//   acc = 0; for i = 0 .. q-1: acc = acc + (double)g[i] * (double)z_i[j];
//   x[j] = (float)((double)x[j] - (double)lr * (acc / (double)q))
// One rounding to float per element whatever q is. Finite g and lr are the caller's job; q == 0 throws
// std::invalid_argument.
void prge_update(float* x, size_t n, const float* g, uint32_t q, float lr, uint64_t seed, uint32_t step,
                 uint32_t param_id);

}  // namespace confidant
