// The per-instruction-set pieces of the CPU matmuls: one table per SIMD level (matmul_<level>.cpp, each compiled
// with its own -m flags), picked at run time. The blocking/threading driver (matmul_gemm.cpp) is shared and never
// touches SIMD itself.
//
// The product is computed as out^T tiles: the vector lanes run over activation ROWS (n) and each weight element is
// broadcast. That way a weight row is dequantised into a plain contiguous float run (no transposition of the
// packed format), and only the activations, which are small next to the work, get transposed when packed.
//  - "xp" panel: activations packed as [k][nv] (nv rows of x side by side, zero-padded past N), 64-byte aligned.
//  - tile result c: mr rows (output columns) x nv floats (activation rows), row stride ldc, aligned like xp.
#pragma once
#include <cstddef>

#include "confidant/weights.h"
#include "simd_level.h"

namespace confidant::cpu {

struct MatmulKernels {
  SimdLevel level;
  int mr;      // output columns per tile (broadcast weights); a multiple of nothing in particular
  int nv;      // activation rows per tile (vector lanes x vectors)
  int kc;      // k per block
  int wrows_pitch;  // row pitch (floats) of the weight panel tile_wrows reads: kc plus a spare cache line, so the
                    // panel's rows do not all map to the same few L1 sets
  int mc;      // activation rows per packed block (the xp block of mc x kc floats should sit in L2)
  int nc_rows; // output columns per task, weight-rows layout (a multiple of mr)
  int nc_cols; // output columns per task, weight-columns layout (a multiple of 32, so groups stay whole)

  // c[r][0..nv) (+)= sum_k w[r * wrows_pitch + k] * xp[k][0..nv), r < mr.
  void (*tile_wrows)(int kc, const float* w, const float* xp, float* c, size_t ldc, bool accumulate);
  // c[r][0..nv) (+)= sum_k w[k * w_pitch + r] * xp[k][0..nv), r < mr.
  void (*tile_wcols)(int kc, const float* w, size_t w_pitch, const float* xp, float* c, size_t ldc,
                     bool accumulate);
  // Writes a finished piece of a tile ([column][row], row stride ldc) to a row-major output:
  // out[n * ldo + m] (+)= tile[m * ldc + n] + bias[m] for n < rows, m < cols (cols <= mr, rows <= nv); bias nullable.
  void (*store_piece)(const float* tile, size_t ldc, int rows, int cols, float* out, size_t ldo, const float* bias,
                      bool accumulate);
  // out[0..n) = row `row` of W, columns [col0, col0 + n), as floats. Grouped formats: col0, n multiples of kGroup.
  void (*dequant)(const WeightView& W, int row, int col0, int n, float* out);
  // acc[j] += dot(w[0..n), x[j * ldx + 0..n)) for j < rows (the few-row "decode" path).
  void (*dot_rows)(const float* w, const float* x, size_t ldx, int rows, int n, float* acc);
  // Register-only FMA loop of `iters` iterations on one thread; returns the flops it did (for peak estimates).
  double (*fma_loop)(long iters);
};

// The table of an available level (simd_level_available), else the scalar one.
const MatmulKernels& matmul_kernels(SimdLevel level);

// Per-level tables; each is defined only where its translation unit is compiled in.
const MatmulKernels& matmul_kernels_scalar();
const MatmulKernels& matmul_kernels_avx2();
const MatmulKernels& matmul_kernels_avx512();
const MatmulKernels& matmul_kernels_neon();

}  // namespace confidant::cpu
