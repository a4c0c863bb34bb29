// Reference (naive fp32) kernels for a Llama decoder: the numerical spec every faster backend is checked against.
// Not fast and not threaded on purpose; plain pointers + dimension ints, llm.c style.
//
// Conventions (all ops):
//  - Row-major, C order. Shapes are given in comments as (dim0, dim1, ...). N = B*T rows.
//  - Weight matrices use the Hugging Face layout W (OC, C): out = x @ W^T.
//  - Every *_backward ACCUMULATES (+=) into its gradient outputs; callers zero them first. A gradient output
//    pointer documented as nullable may be nullptr to skip that gradient (frozen tensor).
//  - Backward functions take the same dimension arguments, in the same order, as their forward.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace confidant::ref {

// out (N,C) = wte[tokens[n]] ; tokens (N), wte (V,C)
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
// dwte (V,C) += scatter of dout (N,C) by tokens
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);

// out (N,C) = x / sqrt(mean(x^2) + eps) * w ; rstd (N) saved for backward ; w (C)
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps);
// dx (N,C) +=, dw (C) += (nullable)
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int N, int C);

// out (N,OC) = x (N,C) @ W^T (W is (OC,C)) + bias (OC, nullable)
void linear_forward(float* out, const float* x, const float* W, const float* bias, int N, int C, int OC);
// Frozen weight: only the input gradient. dx (N,C) += dout (N,OC) @ W
void linear_backward_input(float* dx, const float* dout, const float* W, int N, int C, int OC);

// LoRA branch, added onto an existing linear output:
//   xa (N,R) = x @ A^T (saved for backward), out (N,OC) += scale * xa @ B^T ; A (R,C), B (OC,R), scale = alpha/r.
void lora_forward(float* out, float* xa, const float* x, const float* A, const float* B, int N, int C, int R, int OC,
                  float scale);
// dx (N,C) +=, dA (R,C) += (nullable: A frozen, as in LoRA-FA), dB (OC,R) +=
void lora_backward(float* dx, float* dA, float* dB, const float* dout, const float* x, const float* xa, const float* A,
                   const float* B, int N, int C, int R, int OC, float scale);

// Rotary embedding, rotate-half convention (Hugging Face Llama): for head h and i < HD/2,
//   angle = (pos0 + t) * inv_freq[i]; (x_i, x_{i+HD/2}) -> (x_i cos - x_{i+HD/2} sin, x_{i+HD/2} cos + x_i sin).
// inv_freq (HD/2) is the model's frequency table: rope_default_inv_freq for plain RoPE, or a scaled one (Llama 3
// "llama3", "linear") computed on the host and shipped in the stage file. in/out (B,T,NH,HD); out == in is allowed.
void rope_forward(float* out, const float* in, int B, int T, int NH, int HD, int pos0, const float* inv_freq);
// din (B,T,NH,HD) += R^T dout
void rope_backward(float* din, const float* dout, int B, int T, int NH, int HD, int pos0, const float* inv_freq);
// Plain RoPE's table, as transformers computes it in f32: inv_freq[i] = 1 / theta^(2i/HD), rounded to float.
std::vector<float> rope_default_inv_freq(int HD, float theta);

// Causal self-attention with grouped-query heads (query head h reads kv head h / (NH/NKV)), scale 1/sqrt(HD).
// q, out (B,T,NH,HD); k, v (B,T,NKV,HD); att (B,NH,T,T) softmax probabilities saved for backward.
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int B, int T, int NH,
                       int NKV, int HD);
// dq (B,T,NH,HD) +=, dk, dv (B,T,NKV,HD) +=
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int B, int T, int NH, int NKV, int HD);

// SwiGLU gate: h (N,H) = silu(g) * u, silu(x) = x * sigmoid(x)
void swiglu_forward(float* h, const float* g, const float* u, int N, int H);
// dg, du (N,H) +=
void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int N, int H);

// out (n) = a + b ; in-place allowed
void residual_forward(float* out, const float* a, const float* b, size_t n);
// da, db (n) += dout
void residual_backward(float* da, float* db, const float* dout, size_t n);

// Cross-entropy with a per-row loss weight (mask: 1 = counted, 0 = ignored; fractional weights allowed).
// losses (N) = mask[n] * -log softmax(logits[n])[targets[n]]; returns sum(losses) as double.
// Rows with mask 0 may carry any target (even out of range); they are not read.
double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, const float* mask, int N,
                             int V);
// dlogits (N,V) += dloss * mask[n] * (softmax(logits[n]) - onehot(targets[n])). Recomputes the softmax from the
// logits, so no (N,V) probability buffer is kept. dloss is the gradient of the final loss w.r.t. each row's loss
// (e.g. 1 / number of counted tokens in the whole step).
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* mask,
                            float dloss, int N, int V);

// AdamW (decoupled weight decay, bias-corrected), step t is 1-based. grad is multiplied by grad_scale first
// (global-norm clipping factor, 1 = none). param, m, v updated in place.
void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int t, float grad_scale);

}  // namespace confidant::ref
