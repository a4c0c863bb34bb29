// The CPU backend's non-matmul ops as free functions: threaded with the ThreadPool, inner loops written so -O3
// auto-vectorises them (x86 and aarch64 alike). Each takes the pool first and then exactly the arguments of the
// Backend method of the same name (backend.h), with the same shapes and semantics as ref_ops.h:
//  - backward ops ACCUMULATE (+=) into gradient outputs; nullable gradients as in ref_ops.h;
//  - attention keeps lse (B,NH,T) instead of the (B,NH,T,T) probabilities (flash-attention style).
#pragma once
#include <cstddef>
#include <cstdint>

#include "confidant/weights.h"
#include "simd_level.h"
#include "thread_pool.h"

namespace confidant::cpu {

// out (N,C) = row tokens[n] of wte (any format; only the looked-up rows are dequantised).
void embedding_forward(ThreadPool& pool, float* out, const int32_t* tokens, const WeightView& wte, int N, int C);
// dwte (V,C) f32 += scatter of dout (N,C) by tokens (repeated tokens summed without races).
void embedding_backward(ThreadPool& pool, float* dwte, const float* dout, const int32_t* tokens, int N, int C);

void rmsnorm_forward(ThreadPool& pool, float* out, float* rstd, const float* x, const float* w, int N, int C,
                     float eps);
// dx (N,C) +=, dw (C) += (nullable)
void rmsnorm_backward(ThreadPool& pool, float* dx, float* dw, const float* dout, const float* x, const float* w,
                      const float* rstd, int N, int C);

// in/out (B,T,NH,HD), in-place allowed.
void rope_forward(ThreadPool& pool, float* out, const float* in, int B, int T, int NH, int HD, int pos0,
                  const float* inv_freq);
void rope_backward(ThreadPool& pool, float* din, const float* dout, int B, int T, int NH, int HD, int pos0,
                   const float* inv_freq);

// q, out (B,T,NH,HD); k, v (B,T,NKV,HD); lse (B,NH,T) natural-log log-sum-exp of the scaled scores, nullable.
// level picks the row kernels (attention_rows.h), as the backend's matmuls do theirs.
void attention_forward(ThreadPool& pool, SimdLevel level, float* out, float* lse, const float* q, const float* k, const float* v, int B,
                       int T, int NH, int NKV, int HD);
// dq (B,T,NH,HD) +=, dk, dv (B,T,NKV,HD) +=; out and lse as written by attention_forward.
void attention_backward(ThreadPool& pool, SimdLevel level, float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B, int T, int NH,
                        int NKV, int HD);

void swiglu_forward(ThreadPool& pool, float* h, const float* g, const float* u, int N, int H);
void swiglu_backward(ThreadPool& pool, float* dg, float* du, const float* dh, const float* g, const float* u, int N,
                     int H);

void residual_forward(ThreadPool& pool, float* out, const float* a, const float* b, size_t n);
void residual_backward(ThreadPool& pool, float* da, float* db, const float* dout, size_t n);

double cross_entropy_forward(ThreadPool& pool, float* losses, const float* logits, const int32_t* targets,
                             const float* mask, int N, int V);
void cross_entropy_backward(ThreadPool& pool, float* dlogits, const float* logits, const int32_t* targets,
                            const float* mask, float dloss, int N, int V);

void adamw_step(ThreadPool& pool, float* param, const float* grad, float* m, float* v, size_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale);

}  // namespace confidant::cpu
