// arm64 NEON micro-kernels (Advanced SIMD is mandatory on arm64, so no run-time check is needed).
// Tile 6 x 12: 18 q-register accumulators + 3 activation vectors + 6 weights out of 32 registers (6 x 16 spilled:
// GCC keeps each broadcast weight in its own register for lane-indexed FMAs).
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "matmul_kernels.h"
#include "matmul_tile.h"
#include "packed_rows.h"

namespace confidant::cpu {
namespace {

struct SNeon {
  using V = float32x4_t;
  static constexpr int W = 4;
  static V zero() { return vdupq_n_f32(0.0f); }
  static V load(const float* p) { return vld1q_f32(p); }
  static V loadu(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static void storeu(float* p, V v) { vst1q_f32(p, v); }
  static V set1(float x) { return vdupq_n_f32(x); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static float hsum(V v) { return vaddvq_f32(v); }
};

constexpr int kMr = 6, kNvec = 3, kKc = 256, kPitch = kKc + 16;

float half_at(const uint8_t* p) {
  __fp16 h;
  std::memcpy(&h, p, 2);
  return float(h);
}

// 16 nibble codes (one per byte of q) -> 16 floats q * d + off at out.
inline void nibbles_fma(uint8x16_t q, float32x4_t d, float32x4_t off, float* out) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_high_u8(q);
  vst1q_f32(out + 0, vfmaq_f32(off, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), d));
  vst1q_f32(out + 4, vfmaq_f32(off, vcvtq_f32_u32(vmovl_high_u16(lo)), d));
  vst1q_f32(out + 8, vfmaq_f32(off, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), d));
  vst1q_f32(out + 12, vfmaq_f32(off, vcvtq_f32_u32(vmovl_high_u16(hi)), d));
}

void dequant(const WeightView& W, int row, int col0, int n, float* out) {
  const uint8_t* p = packed_at(W, row, col0);
  int i = 0;
  switch (W.dtype) {
    case WDType::F32:
      std::memcpy(out, p, size_t(n) * 4);
      return;
    case WDType::F16:
      for (; i + 4 <= n; i += 4) {
        vst1q_f32(out + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p + 2 * i)))));
      }
      for (; i < n; ++i) out[i] = half_at(p + 2 * i);
      return;
    case WDType::I8: {
      const float s = W.row_scales[row];
      for (; i + 8 <= n; i += 8) {
        const int16x8_t q = vmovl_s8(vld1_s8(reinterpret_cast<const int8_t*>(p + i)));
        vst1q_f32(out + i, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), s));
        vst1q_f32(out + i + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(q)), s));
      }
      for (; i < n; ++i) out[i] = float(int8_t(p[i])) * s;
      return;
    }
    case WDType::Q4_0:
    case WDType::FP4: {
      const bool q4 = W.dtype == WDType::Q4_0;
      const int block = q4 ? kQ4BlockBytes : kFp4BlockBytes;
      for (int g = 0; g < n / kGroup; ++g) {
        const uint8_t* b = p + size_t(g) * block;
        const float d = half_at(b);
        // Q4_0: (q - 8) * d == q * d - 8d exactly (8d is exact); FP4: q * d + m.
        const float32x4_t dv = vdupq_n_f32(d), off = vdupq_n_f32(q4 ? -8.0f * d : half_at(b + 2));
        const uint8x16_t q = vld1q_u8(b + (q4 ? 2 : 4));
        nibbles_fma(vandq_u8(q, vdupq_n_u8(0x0F)), dv, off, out + g * kGroup);
        nibbles_fma(vshrq_n_u8(q, 4), dv, off, out + g * kGroup + 16);
      }
      return;
    }
  }
}

}  // namespace

const MatmulKernels& matmul_kernels_neon() {
  static const MatmulKernels k = {
      SimdLevel::Neon, kMr, kNvec * SNeon::W, kKc, kPitch, /*mc=*/128, /*nc_rows=*/kMr * 16, /*nc_cols=*/96,
      tile_wrows<SNeon, kMr, kNvec, kPitch>, tile_wcols<SNeon, kMr, kNvec>, store_piece_scalar, dequant, dot_rows<SNeon>,
      fma_loop<SNeon, 16>,
  };
  return k;
}

}  // namespace confidant::cpu
