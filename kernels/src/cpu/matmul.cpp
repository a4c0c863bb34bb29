// The matmul ops as products of matmul_gemm.h. The LoRA gradients are products too: with dxa = scale * dout @ B,
//   dB (OC,R) += scale * dout^T @ xa  = (xa^T @ dout)^T  -> activations xa^T (R,N), "weights" dout (N,OC) by columns,
//   dA (R,C)  += dxa^T @ x                                 -> activations dxa^T (R,N), "weights" x (N,C) by columns,
//   dx (N,C)  += dxa @ A                                   -> activations dxa (N,R), weights A (R,C) by columns,
// so the rank-R side gets the same blocking and threads as the big ones (the reductions over N never race).
#include "matmul.h"

#include "matmul_gemm.h"
#include "scratch.h"

namespace confidant::cpu {

namespace {

GemmSegment segment(const float* act, size_t lda, int K, const WeightView& W, float scale = 1.0f) {
  GemmSegment s;
  s.act = act;
  s.lda = lda;
  s.K = K;
  s.W = W;
  s.act_scale = scale;
  return s;
}

Gemm product(float* out, size_t ldo, int N, int M, WeightLayout layout, const GemmSegment& s) {
  Gemm g;
  g.out = out;
  g.ldo = ldo;
  g.N = N;
  g.M = M;
  g.layout = layout;
  g.seg[0] = s;
  return g;
}

// dst (cols, rows) = src (rows, cols)^T
void transpose(float* dst, const float* src, int rows, int cols) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[size_t(c) * rows + r] = src[size_t(r) * cols + c];
}

// xa (N,R) = x @ A^T
void lora_down(ThreadPool& pool, const MatmulKernels& kr, float* xa, const float* x, const float* A, int N, int C,
               int R) {
  gemm_run(pool, kr, product(xa, R, N, R, WeightLayout::Rows, segment(x, C, C, WeightView::f32(A, R, C))));
}

}  // namespace

void linear_forward(ThreadPool& pool, const MatmulKernels& kr, float* out, const float* x, const WeightView& W,
                    const float* bias, int N, int C, int OC) {
  Gemm g = product(out, OC, N, OC, WeightLayout::Rows, segment(x, C, C, W));
  g.bias = bias;
  gemm_run(pool, kr, g);
}

void linear_backward_input(ThreadPool& pool, const MatmulKernels& kr, float* dx, const float* dout,
                           const WeightView& W, int N, int C, int OC) {
  Gemm g = product(dx, C, N, C, WeightLayout::Cols, segment(dout, OC, OC, W));
  g.accumulate = true;
  gemm_run(pool, kr, g);
}

void linear_lora_forward(ThreadPool& pool, const MatmulKernels& kr, float* out, float* xa, const float* x,
                         const WeightView& W, const float* bias, const float* A, const float* B, int N, int C, int R,
                         int OC, float scale) {
  if (!A || R <= 0) {
    linear_forward(pool, kr, out, x, W, bias, N, C, OC);
    return;
  }
  lora_down(pool, kr, xa, x, A, N, C, R);
  Gemm g = product(out, OC, N, OC, WeightLayout::Rows, segment(x, C, C, W));
  g.bias = bias;
  g.seg[1] = segment(xa, R, R, WeightView::f32(B, OC, R), scale);
  g.nseg = 2;
  gemm_run(pool, kr, g);
}

void linear_lowrank_forward(ThreadPool& pool, const MatmulKernels& kr, float* out, const float* x,
                            const WeightView& W, const float* bias, const float* xl, const float* L, int N, int C,
                            int K, int OC) {
  Gemm g = product(out, OC, N, OC, WeightLayout::Rows, segment(x, C, C, W));
  g.bias = bias;
  if (K > 0) {
    g.seg[1] = segment(xl, K, K, WeightView::f32(L, OC, K));
    g.nseg = 2;
  }
  gemm_run(pool, kr, g);
}

void lora_forward(ThreadPool& pool, const MatmulKernels& kr, float* out, float* xa, const float* x, const float* A,
                  const float* B, int N, int C, int R, int OC, float scale) {
  if (R <= 0) return;
  lora_down(pool, kr, xa, x, A, N, C, R);
  Gemm g = product(out, OC, N, OC, WeightLayout::Rows, segment(xa, R, R, WeightView::f32(B, OC, R), scale));
  g.accumulate = true;
  gemm_run(pool, kr, g);
}

void lora_backward(ThreadPool& pool, const MatmulKernels& kr, float* dx, float* dA, float* dB, const float* dout,
                   const float* x, const float* xa, const float* A, const float* B, int N, int C, int R, int OC,
                   float scale) {
  if (R <= 0 || N <= 0) return;
  // Temp: dxa (N,R), then dxa^T and xa^T (R,N) each.
  float* dxa = thread_scratch(ScratchSlot::Temp, 3 * size_t(N) * R);
  float* dxa_t = dxa + size_t(N) * R;
  float* xa_t = dxa_t + size_t(N) * R;

  // dxa = scale * dout @ B   (B (OC,R) read by columns)
  gemm_run(pool, kr, product(dxa, R, N, R, WeightLayout::Cols, segment(dout, OC, OC, WeightView::f32(B, OC, R), scale)));
  transpose(dxa_t, dxa, N, R);
  transpose(xa_t, xa, N, R);

  // dB (OC,R) += scale * (xa^T @ dout)^T
  Gemm gb = product(dB, R, R, OC, WeightLayout::Cols, segment(xa_t, N, N, WeightView::f32(dout, N, OC), scale));
  gb.out_transposed = true;
  gb.accumulate = true;
  gemm_run(pool, kr, gb);

  if (dA) {  // dA (R,C) += dxa^T @ x
    Gemm ga = product(dA, C, R, C, WeightLayout::Cols, segment(dxa_t, N, N, WeightView::f32(x, N, C)));
    ga.accumulate = true;
    gemm_run(pool, kr, ga);
  }

  // dx (N,C) += dxa @ A
  Gemm gx = product(dx, C, N, C, WeightLayout::Cols, segment(dxa, R, R, WeightView::f32(A, R, C)));
  gx.accumulate = true;
  gemm_run(pool, kr, gx);
}

}  // namespace confidant::cpu
