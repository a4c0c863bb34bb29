// AVX2 + FMA + F16C micro-kernels (compiled with -mavx2 -mfma -mf16c; only called when the CPU has them).
// Tile 6 x 16: 12 ymm accumulators + 2 activation vectors + 1 broadcast out of 16 registers.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matmul_kernels.h"
#include "matmul_tile.h"
#include "packed_rows.h"

namespace confidant::cpu {
namespace {

struct S256 {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

constexpr int kMr = 6, kNvec = 2, kKc = 256, kPitch = kKc + 16;

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 8 nibble codes (low 8 bytes of q) -> 8 floats q * d + off.
inline __m256 nibbles_fma(__m128i q, __m256 d, __m256 off) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(q)), d, off);
}

void dequant(const WeightView& W, int row, int col0, int n, float* out) {
  const uint8_t* p = packed_at(W, row, col0);
  int i = 0;
  switch (W.dtype) {
    case WDType::F32:
      std::memcpy(out, p, size_t(n) * 4);
      return;
    case WDType::F16:
      for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i))));
      }
      for (; i < n; ++i) out[i] = half_at(p + 2 * i);
      return;
    case WDType::I8: {
      const float s = W.row_scales[row];
      const __m256 sv = _mm256_set1_ps(s);
      for (; i + 8 <= n; i += 8) {
        const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), sv));
      }
      for (; i < n; ++i) out[i] = float(int8_t(p[i])) * s;
      return;
    }
    case WDType::Q4_0:
    case WDType::FP4: {
      const bool q4 = W.dtype == WDType::Q4_0;
      const int block = q4 ? kQ4BlockBytes : kFp4BlockBytes;
      const __m128i mask = _mm_set1_epi8(0x0F);
      for (int g = 0; g < n / kGroup; ++g) {
        const uint8_t* b = p + size_t(g) * block;
        const float d = half_at(b);
        // Q4_0: (q - 8) * d == q * d - 8d exactly (8d is exact); FP4: q * d + m.
        const __m256 dv = _mm256_set1_ps(d), off = _mm256_set1_ps(q4 ? -8.0f * d : half_at(b + 2));
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + (q4 ? 2 : 4)));
        const __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
        float* o = out + g * kGroup;
        _mm256_storeu_ps(o, nibbles_fma(lo, dv, off));
        _mm256_storeu_ps(o + 8, nibbles_fma(_mm_srli_si128(lo, 8), dv, off));
        _mm256_storeu_ps(o + 16, nibbles_fma(hi, dv, off));
        _mm256_storeu_ps(o + 24, nibbles_fma(_mm_srli_si128(hi, 8), dv, off));
      }
      return;
    }
  }
}

// One gather per output row and one masked store (see matmul_avx512.cpp).
void store_piece(const float* tile, size_t ldc, int rows, int cols, float* out, size_t ldo, const float* bias,
                 bool accumulate) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
  const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32(static_cast<int>(ldc)));
  const __m256 maskf = _mm256_castsi256_ps(mask);
  const __m256 b = bias ? _mm256_maskload_ps(bias, mask) : _mm256_setzero_ps();
  for (int n = 0; n < rows; ++n) {
    float* o = out + size_t(n) * ldo;
    __m256 v = _mm256_add_ps(_mm256_mask_i32gather_ps(_mm256_setzero_ps(), tile + n, idx, maskf, 4), b);
    if (accumulate) v = _mm256_add_ps(v, _mm256_maskload_ps(o, mask));
    _mm256_maskstore_ps(o, mask, v);
  }
}

}  // namespace

const MatmulKernels& matmul_kernels_avx2() {
  static const MatmulKernels k = {
      SimdLevel::Avx2, kMr, kNvec * S256::W, kKc, kPitch, /*mc=*/192, /*nc_rows=*/kMr * 16, /*nc_cols=*/96,
      tile_wrows<S256, kMr, kNvec, kPitch>, tile_wcols<S256, kMr, kNvec>, store_piece, dequant, dot_rows<S256>,
      fma_loop<S256, 12>,
  };
  return k;
}

}  // namespace confidant::cpu
