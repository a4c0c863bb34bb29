// The CPU backend's matmul ops (shapes and semantics as backend.h / ref_ops.h), on any weight format, threaded on
// the pool and using the SIMD level of `kernels`. Input-gradient ops accumulate (+=) like ref_ops.h.
#pragma once
#include "confidant/weights.h"
#include "matmul_kernels.h"
#include "thread_pool.h"

namespace confidant::cpu {

// out (N,OC) = x (N,C) @ W^T + bias (nullable); W (OC,C) in any format.
void linear_forward(ThreadPool& pool, const MatmulKernels& kernels, float* out, const float* x, const WeightView& W,
                    const float* bias, int N, int C, int OC);
// dx (N,C) += dout (N,OC) @ W
void linear_backward_input(ThreadPool& pool, const MatmulKernels& kernels, float* dx, const float* dout,
                           const WeightView& W, int N, int C, int OC);
// out = x @ W^T + bias + scale * xa @ B^T with xa (N,R) = x @ A^T written; the LoRA branch is one more k block of
// the same output tiles. A == nullptr: plain linear_forward.
void linear_lora_forward(ThreadPool& pool, const MatmulKernels& kernels, float* out, float* xa, const float* x,
                         const WeightView& W, const float* bias, const float* A, const float* B, int N, int C, int R,
                         int OC, float scale);
// out (N,OC) = x @ W^T + bias + xl (N,K) @ L^T, L (OC,K) f32: both products in one pass over out.
void linear_lowrank_forward(ThreadPool& pool, const MatmulKernels& kernels, float* out, const float* x,
                            const WeightView& W, const float* bias, const float* xl, const float* L, int N, int C,
                            int K, int OC);
// out (N,OC) += scale * xa @ B^T, xa (N,R) = x @ A^T written; A (R,C), B (OC,R).
void lora_forward(ThreadPool& pool, const MatmulKernels& kernels, float* out, float* xa, const float* x,
                  const float* A, const float* B, int N, int C, int R, int OC, float scale);
// dx (N,C) +=, dA (R,C) += (nullable), dB (OC,R) +=
void lora_backward(ThreadPool& pool, const MatmulKernels& kernels, float* dx, float* dA, float* dB, const float* dout,
                   const float* x, const float* xa, const float* A, const float* B, int N, int C, int R, int OC,
                   float scale);

}  // namespace confidant::cpu
