// The row kernels that hold attention's multiply-adds and exponentials (attention.cpp), per SIMD level like the matmul's
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
  // Online softmax step of one query row over one key block: masks keys >= n_valid, turns the kAttnBlock scaled
  // scores s into p = exp(s - m_new) in place, folds them into the running max m and sum l, and rescales the row's
  // output accumulator acc_row (HD floats) by exp(m_old - m_new).
  void (*softmax_step)(float* s, int n_valid, float* m, float* l, float* acc_row, int HD);
  // Backward: one row's unscaled scores s and dp = dout . v become p = exp(s * scale - lse) and
  // dS = p * (dp - D) * scale, in place; keys >= n_valid get p = dS = 0.
  void (*probs_and_ds)(float* s, float* dp, int n_valid, float lse, float D, float scale);
};

// The AVX2 table for Avx2 and Avx512 when this build has it (x86-64 with GCC/Clang), else the portable one.
const AttentionRowKernels& attention_row_kernels(SimdLevel level);
const AttentionRowKernels& attention_row_kernels_avx2();

}  // namespace confidant::cpu
