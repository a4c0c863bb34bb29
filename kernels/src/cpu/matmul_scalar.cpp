// Portable scalar micro-kernels: the fallback where no SIMD level is compiled in or available, and the selector
// of the per-level tables. Same algorithm and blocking as the SIMD levels, one float per "register".
#include <cstring>

#include "confidant/half.h"
#include "matmul_kernels.h"
#include "matmul_tile.h"
#include "packed_rows.h"

namespace confidant::cpu {
namespace {

struct S1 {
  using V = float;
  static constexpr int W = 1;
  static V zero() { return 0.0f; }
  static V load(const float* p) { return *p; }
  static V loadu(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static void storeu(float* p, V v) { *p = v; }
  static V set1(float x) { return x; }
  static V add(V a, V b) { return a + b; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static float hsum(V v) { return v; }
};

constexpr int kMr = 4, kNvec = 8, kKc = 256, kPitch = kKc + 16;

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

void dequant(const WeightView& W, int row, int col0, int n, float* out) {
  const uint8_t* p = packed_at(W, row, col0);
  switch (W.dtype) {
    case WDType::F32:
      std::memcpy(out, p, size_t(n) * 4);
      return;
    case WDType::F16:
      for (int i = 0; i < n; ++i) out[i] = half_at(p + 2 * i);
      return;
    case WDType::I8:
      for (int i = 0; i < n; ++i) out[i] = float(int8_t(p[i])) * W.row_scales[row];
      return;
    case WDType::Q4_0:
    case WDType::FP4: {
      const bool q4 = W.dtype == WDType::Q4_0;
      for (int g = 0; g < n / kGroup; ++g) {
        const uint8_t* b = p + size_t(g) * (q4 ? kQ4BlockBytes : kFp4BlockBytes);
        const float d = half_at(b), m = q4 ? 0.0f : half_at(b + 2);
        const uint8_t* qs = b + (q4 ? 2 : 4);
        float* o = out + g * kGroup;
        for (int j = 0; j < kGroup / 2; ++j) {
          const int lo = qs[j] & 0x0F, hi = qs[j] >> 4;
          o[j] = q4 ? float(lo - 8) * d : float(lo) * d + m;
          o[j + kGroup / 2] = q4 ? float(hi - 8) * d : float(hi) * d + m;
        }
      }
      return;
    }
  }
}

}  // namespace

const MatmulKernels& matmul_kernels_scalar() {
  static const MatmulKernels k = {
      SimdLevel::Scalar, kMr, kNvec * S1::W, kKc, kPitch, /*mc=*/64, /*nc_rows=*/kMr * 16, /*nc_cols=*/64,
      tile_wrows<S1, kMr, kNvec, kPitch>, tile_wcols<S1, kMr, kNvec>, store_piece_scalar, dequant, dot_rows<S1>,
      fma_loop<S1, 8>,
  };
  return k;
}

const MatmulKernels& matmul_kernels(SimdLevel level) {
  if (!simd_level_available(level)) return matmul_kernels_scalar();
  switch (level) {
#if defined(CONFIDANT_CPU_X86)
    case SimdLevel::Avx2: return matmul_kernels_avx2();
    case SimdLevel::Avx512: return matmul_kernels_avx512();
#endif
#if defined(CONFIDANT_CPU_NEON)
    case SimdLevel::Neon: return matmul_kernels_neon();
#endif
    default: return matmul_kernels_scalar();
  }
}

}  // namespace confidant::cpu
