// AVX-512F micro-kernels (compiled with -mavx512f -mavx2 -mfma -mf16c; only called when the CPU has them).
// Tile 14 x 32: 28 zmm accumulators + 2 activation vectors out of 32 registers, broadcasts folded into the FMAs.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "matmul_kernels.h"
#include "matmul_tile.h"
#include "packed_rows.h"

namespace confidant::cpu {
namespace {

struct S512 {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_load_ps(p); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
};

constexpr int kMr = 14, kNvec = 2, kKc = 256, kPitch = kKc + 16;

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16 nibble codes (one per byte of q) -> 16 floats q * d + off.
inline __m512 nibbles_fma(__m128i q, __m512 d, __m512 off) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q)), d, off);
}

void dequant(const WeightView& W, int row, int col0, int n, float* out) {
  const uint8_t* p = packed_at(W, row, col0);
  int i = 0;
  switch (W.dtype) {
    case WDType::F32:
      std::memcpy(out, p, size_t(n) * 4);
      return;
    case WDType::F16:
      for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 * i))));
      }
      for (; i < n; ++i) out[i] = half_at(p + 2 * i);
      return;
    case WDType::I8: {
      const float s = W.row_scales[row];
      const __m512 sv = _mm512_set1_ps(s);
      for (; i + 16 <= n; i += 16) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), sv));
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
        const __m512 dv = _mm512_set1_ps(d), off = _mm512_set1_ps(q4 ? -8.0f * d : half_at(b + 2));
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + (q4 ? 2 : 4)));
        _mm512_storeu_ps(out + g * kGroup, nibbles_fma(_mm_and_si128(q, mask), dv, off));
        _mm512_storeu_ps(out + g * kGroup + 16, nibbles_fma(_mm_and_si128(_mm_srli_epi16(q, 4), mask), dv, off));
      }
      return;
    }
  }
}

// One gather per output row (its mr values sit one tile row apart) and one masked store: a whole row segment per
// store keeps many output cache-line misses in flight, where one store per element would fill the store buffer.
void store_piece(const float* tile, size_t ldc, int rows, int cols, float* out, size_t ldo, const float* bias,
                 bool accumulate) {
  const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1);
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(static_cast<int>(ldc)));
  const __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
  for (int n = 0; n < rows; ++n) {
    float* o = out + size_t(n) * ldo;
    __m512 v = _mm512_add_ps(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, idx, tile + n, 4), b);
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, o));
    _mm512_mask_storeu_ps(o, mask, v);
  }
}

}  // namespace

// mc = 1024: every weight panel is dequantised (f32: copied) once per mc activation rows, and that copy measured
// ~10% of a TinyLlama layer at mc = 256; one k block of the packed rows (kc x mc floats = 1 MiB) still sits in the
// 1-2 MiB L2 of AVX-512 cores. Measured: P-RGE's 1024-row forward 10% faster, T=512 layer a few % faster.
const MatmulKernels& matmul_kernels_avx512() {
  static const MatmulKernels k = {
      SimdLevel::Avx512, kMr, kNvec * S512::W, kKc, kPitch, /*mc=*/1024, /*nc_rows=*/kMr * 8, /*nc_cols=*/448,
      tile_wrows<S512, kMr, kNvec, kPitch>, tile_wcols<S512, kMr, kNvec>, store_piece, dequant, dot_rows<S512>,
      fma_loop<S512, 16>,
  };
  return k;
}

}  // namespace confidant::cpu
