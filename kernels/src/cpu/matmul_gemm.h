// The one blocked, threaded matrix product behind every CPU matmul op (linear, linear backward, LoRA):
//   out (N, M) (+)= sum over segments s of  act_scale_s * act_s (N, K_s) @ op(W_s)  + bias (M)
// with op(W) = W^T when W is stored (M, K) ("weight rows": forward) and op(W) = W when stored (K, M) ("weight
// columns": input gradient). W may be in any packed format; it is dequantised a (k block x few columns) panel at a
// time into per-thread L1/L2-sized buffers, never as a whole. A second segment lets the LoRA branch join the base
// matmul in the same output tiles (one more k block), so the fused op writes each output element once.
//
// Blocking (BLIS-like, see matmul_kernels.h for the tile): activations are packed (transposed) into a shared
// mc x K block once per block of mc rows; then threads take output-column blocks dynamically and, per k block,
// dequantise that block's weight panel (L2-sized) and run it against every packed row chunk (L1-sized),
// accumulating in a per-thread tile; during the last k block each finished piece is written to the output (with
// bias and the accumulate option) while the next is computed. A few rows (decode) take a dot-product path.
#pragma once
#include <cstddef>

#include "confidant/weights.h"
#include "matmul_kernels.h"
#include "thread_pool.h"

namespace confidant::cpu {

enum class WeightLayout {
  Rows,  // W is (M, K): out = act @ W^T
  Cols,  // W is (K, M): out = act @ W
};

struct GemmSegment {
  const float* act = nullptr;  // (N, K), row stride lda floats
  size_t lda = 0;
  float act_scale = 1.0f;
  int K = 0;
  WeightView W;
};

struct Gemm {
  float* out = nullptr;
  size_t ldo = 0;             // floats between output rows (between columns when out_transposed)
  bool out_transposed = false;  // element (n, m) lives at out[m * ldo + n]
  bool accumulate = false;    // out += result instead of out = result
  const float* bias = nullptr;  // (M), nullable
  int N = 0, M = 0;
  WeightLayout layout = WeightLayout::Rows;
  GemmSegment seg[2];
  int nseg = 1;
};

void gemm_run(ThreadPool& pool, const MatmulKernels& kernels, const Gemm& g);

// Activation rows at or below which a weight-rows product takes the dot-product (decode) path.
constexpr int kGemvMaxRows = 6;

}  // namespace confidant::cpu
