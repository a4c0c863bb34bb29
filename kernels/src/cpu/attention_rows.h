// The two row kernels that hold attention's multiply-adds (attention.cpp), per SIMD level like the matmul's
// micro-kernels: a portable table written with vec8.h (SSE2 on x86-64, NEON on arm64) and an AVX2+FMA table in
// attention_avx2.cpp, compiled with -mavx2 -mfma and called only when the CPU has them. The AVX2 unit holds plain
// functions over intrinsics and no templates or inline library code, so nothing it compiles can be merged by the
// linker into the portable path.
#pragma once
#include "simd_level.h"

namespace confidant::cpu {

// Keys per key block (and query rows per query block) of the flash attention.
constexpr int kAttnBlock = 32;

struct AttentionRowKernels {
  // s0[j] = x0 . tile[:, j] and s1[j] = x1 . tile[:, j] for the kAttnBlock columns of a transposed (HD, kAttnBlock)
  // key or value tile.
  void (*rows2_times_tile)(float* s0, float* s1, const float* x0, const float* x1, const float* tile, int HD);
  // y0[0:HD) += sum_{j<n} c0[j] * rows[j], y1[0:HD) += sum_{j<n} c1[j] * rows[j] for contiguous (n, HD) rows.
  void (*axpy2_rows)(float* y0, float* y1, const float* c0, const float* c1, const float* rows, int n, int HD);
};

// The AVX2 table for Avx2 and Avx512 when this build has it (x86-64 with GCC/Clang), else the portable one.
const AttentionRowKernels& attention_row_kernels(SimdLevel level);
const AttentionRowKernels& attention_row_kernels_avx2();

}  // namespace confidant::cpu
