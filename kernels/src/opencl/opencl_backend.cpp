// The OpenCL backend: on phones the mobile GPU (Adreno, Mali), on desktops any OpenCL device (PoCL on the CPU in
// CI). It runs next to the CPU backend: the agent gives heads [0, g) of a layer to it while the CPU does [g, H).
//
// Rules (the memory model of backend.h, and how this file keeps it):
//  - Every pointer is host memory. An op enqueues, on one in-order queue, non-blocking uploads of its inputs,
//    its kernels and non-blocking read-backs of its outputs, flushes the queue so the device starts, and returns
//    without waiting. Outputs are valid, and inputs may be changed or freed, only after synchronize(), which is
//    clFinish plus forgetting every host range (cl_memory.h). After synchronize() returns nothing queued remains,
//    so the backend never touches a host pointer again until the next op.
//  - So until synchronize() the caller (and the CPU backend running beside it) must not write any range given
//    to an op of this backend, input or output, nor read its outputs; other memory is free to use. That is what
//    lets the CPU compute heads [g, H) into its own buffers while the device works.
//  - Within a batch (the ops between two synchronize() calls) a host range already on the device (an output
//    of an earlier op or an input already uploaded) is reused, not uploaded again; a write to a range makes
//    overlapping copies stale. Outputs are still read back after every op, so the host sees every output.
//  - Base weights (WeightView) are copied to the device once and found again by address (cl_memory.h); they
//    must stay mapped and unchanged while the backend lives, as a stage's mapped weights do. LoRA A/B,
//    norm weights and biases are trainable or small: uploaded per batch like activations.
//  - Ops that are not native (supports() == false: embedding, cross-entropy, AdamW, and linear on I8 weights)
//    call synchronize() and then the fallback, which is synchronous. A shape the kernels cannot take goes the
//    same way: head dim above kAttMaxHeadDim (256), an attention block that does not fit the device's local
//    memory (about 23 KiB at HD 256; GPUs have 32 KiB or more), a buffer above the device's max allocation.
//  - Errors after creation throw ClError (std::runtime_error), from the op or from synchronize().
//  - One thread drives a backend; it is not thread-safe. The destructor waits for the queue, then releases
//    every buffer, kernel, the program, queue and context.
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "cl_memory.h"
#include "cl_runtime.h"
#include "confidant/backend.h"

namespace confidant {

namespace {

using opencl::ClMemory;
using opencl::ClRuntime;
using opencl::Kernel;
using opencl::cl_check;

constexpr size_t kF32 = sizeof(float);

// A __local kernel argument of this many floats (clSetKernelArg with a size and no value).
struct LocalFloats {
  size_t count;
};

size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Bytes a weight view spans from its row 0 (the last row has no stride padding after it).
size_t view_bytes(const WeightView& W) {
  if (W.rows <= 0) return 0;
  return size_t(W.rows - 1) * W.row_stride_bytes + wdtype_row_bytes(W.dtype, W.cols);
}

bool native_weight_format(WDType t) {
  return t == WDType::F32 || t == WDType::F16 || t == WDType::Q4_0 || t == WDType::FP4;
}

Kernel linear_kernel(WDType t, bool backward) {
  switch (t) {
    case WDType::F16: return backward ? Kernel::kLinearBwdF16 : Kernel::kLinearFwdF16;
    case WDType::Q4_0: return backward ? Kernel::kLinearBwdQ4_0 : Kernel::kLinearFwdQ4_0;
    case WDType::FP4: return backward ? Kernel::kLinearBwdFp4 : Kernel::kLinearFwdFp4;
    default: return backward ? Kernel::kLinearBwdF32 : Kernel::kLinearFwdF32;
  }
}

class OpenClBackend final : public Backend {
 public:
  OpenClBackend(std::unique_ptr<ClRuntime> rt, Backend* fallback) : rt_(std::move(rt)), fallback_(fallback) {
    const opencl::DeviceInfo& d = rt_->device();
    // Weights may take up to half the device memory (phones: shared with the CPU and the OS).
    mem_ = std::make_unique<ClMemory>(rt_->api(), rt_->context(), rt_->queue(), size_t(d.global_mem_bytes / 2));
    cl_int err = CL_SUCCESS;
    dummy_ = api().clCreateBuffer(rt_->context(), CL_MEM_READ_WRITE, 16, nullptr, &err);
    cl_check(err, "clCreateBuffer(dummy)");
  }

  ~OpenClBackend() override {
    api().clFinish(rt_->queue());  // queued commands may still read or write host memory
    for (auto& [key, mem] : rope_tables_) api().clReleaseMemObject(mem);
    if (dummy_) api().clReleaseMemObject(dummy_);
    mem_.reset();  // before rt_ (declared first), which releases the context
  }

  BackendInfo info() const override {
    const opencl::DeviceInfo& d = rt_->device();
    return {"opencl", d.name + " (" + d.version + ", " + std::to_string(d.compute_units) + " CUs)",
            static_cast<int>(d.compute_units), d.type};
  }

  bool supports(Op op, WDType w) const override {
    switch (op) {
      case Op::Linear:
      case Op::LinearBackward: return native_weight_format(w);
      case Op::RmsNorm:
      case Op::Lora:
      case Op::Rope:
      case Op::Attention:
      case Op::SwiGlu:
      case Op::Residual: return true;
      default: return false;  // Embedding, CrossEntropy, AdamW: the fallback's
    }
  }

  void synchronize() override {
    if (pending_) {
      pending_ = false;
      cl_check(api().clFinish(rt_->queue()), "clFinish");
    }
    mem_->end_batch();
  }

  // ---- fallback ops ----
  void embedding_forward(float* out, const int32_t* tokens, const WeightView& wte, int N, int C) override {
    fallback().embedding_forward(out, tokens, wte, N, C);
  }
  void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) override {
    fallback().embedding_backward(dwte, dout, tokens, N, C);
  }
  double cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, const float* mask, int N,
                               int V) override {
    return fallback().cross_entropy_forward(losses, logits, targets, mask, N, V);
  }
  void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* mask,
                              float dloss, int N, int V) override {
    fallback().cross_entropy_backward(dlogits, logits, targets, mask, dloss, N, V);
  }
  void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, int t, float grad_scale) override {
    fallback().adamw_step(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, t, grad_scale);
  }

  // ---- matmuls ----
  void linear_forward(float* out, const float* x, const WeightView& W, const float* bias, int N, int C,
                      int OC) override {
    if (N <= 0 || OC <= 0) return;
    if (!native_linear(W, N, C, OC)) return fallback().linear_forward(out, x, W, bias, N, C, OC);
    const cl_mem w = mem_->weight(W.data, view_bytes(W));
    const cl_mem xb = in(x, size_t(N) * C);
    const cl_mem bb = bias ? in(bias, OC) : dummy_;
    const cl_mem ob = out_buf(out, size_t(N) * OC, false);
    enqueue_linear_fwd(linear_kernel(W.dtype, false), ob, xb, w, W.row_stride_bytes, bb, bias != nullptr, N, C, OC,
                       1.0f, false);
    finish_op(ob, out, size_t(N) * OC);
  }

  void linear_backward_input(float* dx, const float* dout, const WeightView& W, int N, int C, int OC) override {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    if (!native_linear(W, N, C, OC)) return fallback().linear_backward_input(dx, dout, W, N, C, OC);
    const cl_mem w = mem_->weight(W.data, view_bytes(W));
    const cl_mem gb = in(dout, size_t(N) * OC);
    const cl_mem db = out_buf(dx, size_t(N) * C, true);
    enqueue_linear_bwd(linear_kernel(W.dtype, true), db, gb, w, W.row_stride_bytes, N, C, OC, 1.0f, true);
    finish_op(db, dx, size_t(N) * C);
  }

  // xa = x @ A^T, out += scale * xa @ B^T: two f32 matmuls, A and B uploaded as activations (they train).
  void lora_forward(float* out, float* xa, const float* x, const float* A, const float* B, int N, int C, int R, int OC,
                    float scale) override {
    if (N <= 0 || R <= 0) return;
    if (C <= 0 || OC <= 0 || !fits({size_t(N) * C, size_t(N) * OC, size_t(R) * C, size_t(OC) * R}))
      return fallback().lora_forward(out, xa, x, A, B, N, C, R, OC, scale);
    const cl_mem xb = in(x, size_t(N) * C), ab = in(A, size_t(R) * C), bb = in(B, size_t(OC) * R);
    const cl_mem xab = out_buf(xa, size_t(N) * R, false);
    enqueue_linear_fwd(Kernel::kLinearFwdF32, xab, xb, ab, size_t(C) * kF32, dummy_, false, N, C, R, 1.0f, false);
    mem_->read_back(xab, xa, size_t(N) * R * kF32);
    const cl_mem ob = out_buf(out, size_t(N) * OC, true);
    enqueue_linear_fwd(Kernel::kLinearFwdF32, ob, xab, bb, size_t(R) * kF32, dummy_, false, N, R, OC, scale, true);
    finish_op(ob, out, size_t(N) * OC);
  }

  // dxa = scale * dout @ B (scratch), dB += scale * dout^T @ xa, dA += dxa^T @ x, dx += dxa @ A.
  void lora_backward(float* dx, float* dA, float* dB, const float* dout, const float* x, const float* xa,
                     const float* A, const float* B, int N, int C, int R, int OC, float scale) override {
    if (N <= 0 || R <= 0) return;
    if (C <= 0 || OC <= 0 || !fits({size_t(N) * C, size_t(N) * OC, size_t(R) * C, size_t(OC) * R}))
      return fallback().lora_backward(dx, dA, dB, dout, x, xa, A, B, N, C, R, OC, scale);
    const cl_mem gb = in(dout, size_t(N) * OC), xb = in(x, size_t(N) * C), xab = in(xa, size_t(N) * R);
    const cl_mem ab = in(A, size_t(R) * C), bb = in(B, size_t(OC) * R);
    const cl_mem dxa = mem_->scratch(size_t(N) * R * kF32);
    enqueue_linear_bwd(Kernel::kLinearBwdF32, dxa, gb, bb, size_t(R) * kF32, N, R, OC, scale, false);
    const cl_mem dBb = out_buf(dB, size_t(OC) * R, true);
    enqueue_matmul_tn(dBb, gb, xab, N, OC, R, scale);
    mem_->read_back(dBb, dB, size_t(OC) * R * kF32);
    if (dA) {
      const cl_mem dAb = out_buf(dA, size_t(R) * C, true);
      enqueue_matmul_tn(dAb, dxa, xb, N, R, C, 1.0f);
      mem_->read_back(dAb, dA, size_t(R) * C * kF32);
    }
    const cl_mem dxb = out_buf(dx, size_t(N) * C, true);
    enqueue_linear_bwd(Kernel::kLinearBwdF32, dxb, dxa, ab, size_t(C) * kF32, N, C, R, 1.0f, true);
    finish_op(dxb, dx, size_t(N) * C);
  }

  // ---- norms and point-wise ----
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) override {
    if (N <= 0 || C <= 0) return;
    if (!fits({size_t(N) * C})) return fallback().rmsnorm_forward(out, rstd, x, w, N, C, eps);
    const cl_mem xb = in(x, size_t(N) * C), wb = in(w, C);
    const cl_mem ob = out_buf(out, size_t(N) * C, false), rb = out_buf(rstd, N, false);
    launch(Kernel::kRmsnormFwd, {size_t(N) * opencl::kNormWg}, {size_t(opencl::kNormWg)}, ob, rb, xb, wb, C, eps);
    mem_->read_back(rb, rstd, size_t(N) * kF32);
    finish_op(ob, out, size_t(N) * C);
  }

  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                        int N, int C) override {
    if (N <= 0 || C <= 0) return;
    if (!fits({size_t(N) * C})) return fallback().rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
    const cl_mem gb = in(dout, size_t(N) * C), xb = in(x, size_t(N) * C), wb = in(w, C), rb = in(rstd, N);
    if (dw) {
      const cl_mem dwb = out_buf(dw, C, true);
      launch(Kernel::kRmsnormBwdDw, {round_up(C, opencl::kPointwiseWg)}, {size_t(opencl::kPointwiseWg)}, dwb, gb, xb,
             rb, N, C);
      mem_->read_back(dwb, dw, size_t(C) * kF32);
    }
    const cl_mem dxb = out_buf(dx, size_t(N) * C, true);
    launch(Kernel::kRmsnormBwdDx, {size_t(N) * opencl::kNormWg}, {size_t(opencl::kNormWg)}, dxb, gb, xb, wb, rb, C);
    finish_op(dxb, dx, size_t(N) * C);
  }

  void swiglu_forward(float* h, const float* g, const float* u, int N, int H) override {
    const size_t n = size_t(N) * H;
    if (N <= 0 || H <= 0) return;
    if (!fits({n})) return fallback().swiglu_forward(h, g, u, N, H);
    const cl_mem gb = in(g, n), ub = in(u, n), hb = out_buf(h, n, false);
    launch(Kernel::kSwigluFwd, {pointwise_global(n)}, {size_t(opencl::kPointwiseWg)}, hb, gb, ub, cl_ulong(n));
    finish_op(hb, h, n);
  }

  void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int N, int H) override {
    const size_t n = size_t(N) * H;
    if (N <= 0 || H <= 0) return;
    if (!fits({n})) return fallback().swiglu_backward(dg, du, dh, g, u, N, H);
    const cl_mem hb = in(dh, n), gb = in(g, n), ub = in(u, n);
    const cl_mem dgb = out_buf(dg, n, true), dub = out_buf(du, n, true);
    launch(Kernel::kSwigluBwd, {pointwise_global(n)}, {size_t(opencl::kPointwiseWg)}, dgb, dub, hb, gb, ub,
           cl_ulong(n));
    mem_->read_back(dgb, dg, n * kF32);
    finish_op(dub, du, n);
  }

  void residual_forward(float* out, const float* a, const float* b, size_t n) override {
    if (n == 0) return;
    if (!fits({n})) return fallback().residual_forward(out, a, b, n);
    const cl_mem ab = in(a, n), bb = in(b, n), ob = out_buf(out, n, false);
    launch(Kernel::kResidualFwd, {pointwise_global(n)}, {size_t(opencl::kPointwiseWg)}, ob, ab, bb, cl_ulong(n));
    finish_op(ob, out, n);
  }

  void residual_backward(float* da, float* db, const float* dout, size_t n) override {
    if (n == 0) return;
    if (!fits({n})) return fallback().residual_backward(da, db, dout, n);
    const cl_mem gb = in(dout, n);
    for (float* d : {da, db}) {
      if (!d) continue;
      const cl_mem b = out_buf(d, n, true);
      launch(Kernel::kAddInto, {pointwise_global(n)}, {size_t(opencl::kPointwiseWg)}, b, gb, cl_ulong(n));
      mem_->read_back(b, d, n * kF32);
    }
    flush();
  }

  // ---- rope and attention ----
  void rope_forward(float* out, const float* in_, int B, int T, int NH, int HD, int pos0,
                    const float* inv_freq) override {
    rope(out, in_, B, T, NH, HD, pos0, inv_freq, false);
  }
  void rope_backward(float* din, const float* dout, int B, int T, int NH, int HD, int pos0,
                     const float* inv_freq) override {
    rope(din, dout, B, T, NH, HD, pos0, inv_freq, true);
  }

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T, int NH,
                         int NKV, int HD) override {
    if (B <= 0 || T <= 0 || NH <= 0) return;
    if (!native_attention(B, T, NH, NKV, HD, false)) return fallback().attention_forward(out, lse, q, k, v, B, T, NH, NKV, HD);
    const size_t nq = size_t(B) * T * NH * HD, nkv = size_t(B) * T * NKV * HD, nl = size_t(B) * NH * T;
    const cl_mem qb = in(q, nq), kb = in(k, nkv), vb = in(v, nkv);
    const cl_mem ob = out_buf(out, nq, false);
    const cl_mem lb = lse ? out_buf(lse, nl, false) : mem_->scratch(nl * kF32);
    launch(Kernel::kAttentionFwd, attention_global(T, B * NH), attention_local(), ob, lb, qb, kb, vb, T, NH, NKV, HD,
           attention_scale(HD), attention_block(HD));
    if (lse) mem_->read_back(lb, lse, nl * kF32);
    finish_op(ob, out, nq);
  }

  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse,
                          const float* q, const float* k, const float* v, int B, int T, int NH, int NKV,
                          int HD) override {
    if (B <= 0 || T <= 0 || NH <= 0) return;
    if (!native_attention(B, T, NH, NKV, HD, true))
      return fallback().attention_backward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HD);
    const size_t nq = size_t(B) * T * NH * HD, nkv = size_t(B) * T * NKV * HD, nl = size_t(B) * NH * T;
    const cl_mem gb = in(dout, nq), ob = in(out, nq), lb = in(lse, nl);
    const cl_mem qb = in(q, nq), kb = in(k, nkv), vb = in(v, nkv);
    const cl_mem Db = mem_->scratch(nl * kF32);
    const int rows = B * T * NH;
    launch(Kernel::kAttentionBwdD, {round_up(rows, opencl::kPointwiseWg)}, {size_t(opencl::kPointwiseWg)}, Db, gb, ob,
           T, NH, HD, rows);
    const float scale = attention_scale(HD);
    const cl_mem dqb = out_buf(dq, nq, true);
    launch(Kernel::kAttentionBwdDq, attention_global(T, B * NH), attention_local(), dqb, gb, qb, kb, vb, lb, Db, T,
           NH, NKV, HD, scale, attention_block(HD));
    mem_->read_back(dqb, dq, nq * kF32);
    const cl_mem dkb = out_buf(dk, nkv, true), dvb = out_buf(dv, nkv, true);
    launch(Kernel::kAttentionBwdDkv, attention_global(T, B * NKV), attention_local(), dkb, dvb, gb, qb, kb, vb, lb,
           Db, T, NH, NKV, HD, scale, attention_block(HD));
    mem_->read_back(dkb, dk, nkv * kF32);
    finish_op(dvb, dv, nkv);
  }

 private:
  const opencl::ClApi& api() const { return rt_->api(); }

  // Everything queued must land before the synchronous fallback reads or writes host memory.
  Backend& fallback() {
    synchronize();
    return *fallback_;
  }

  bool fits(std::initializer_list<size_t> float_counts) const {
    for (size_t n : float_counts)
      if (n * kF32 > rt_->device().max_alloc_bytes) return false;
    return true;
  }
  bool native_linear(const WeightView& W, int N, int C, int OC) const {
    return native_weight_format(W.dtype) && C > 0 && W.rows == OC && W.cols == C && W.data &&
           view_bytes(W) <= rt_->device().max_alloc_bytes && fits({size_t(N) * C, size_t(N) * OC});
  }
  bool native_attention(int B, int T, int NH, int NKV, int HD, bool backward) const {
    if (NKV <= 0 || NH % NKV != 0 || HD <= 0 || HD > opencl::kAttMaxHeadDim) return false;
    if (!fits({size_t(B) * T * NH * HD, size_t(B) * T * NKV * HD})) return false;
    const cl_ulong staged = attention_block(HD).count * kF32;  // plus what each kernel declares itself
    for (Kernel k : {Kernel::kAttentionFwd, Kernel::kAttentionBwdDq, Kernel::kAttentionBwdDkv}) {
      if ((k == Kernel::kAttentionFwd) == backward) continue;
      if (rt_->kernel_local_bytes(k) + staged > rt_->device().local_mem_bytes) return false;
    }
    return true;
  }
  // The 16 x HD block the attention kernels stage in local memory (HD rounded up to 16).
  static LocalFloats attention_block(int HD) {
    return {size_t(opencl::kAttTile) * size_t((HD + opencl::kAttTile - 1) / opencl::kAttTile) * opencl::kAttTile};
  }

  cl_mem in(const float* host, size_t floats) {
    pending_ = true;
    return mem_->input(host, floats * kF32);
  }
  cl_mem out_buf(float* host, size_t floats, bool accumulate) {
    pending_ = true;
    return mem_->output(host, floats * kF32, accumulate);
  }
  // The op's last output goes back to the host; the flush makes the device start now, while the caller goes on
  // with CPU work (without it some drivers wait for clFinish).
  void finish_op(cl_mem buf, float* host, size_t floats) {
    mem_->read_back(buf, host, floats * kF32);
    flush();
  }
  void flush() { cl_check(api().clFlush(rt_->queue()), "clFlush"); }

  // ---- kernel launches ----
  void set_arg(cl_kernel k, cl_uint i, cl_mem v) { set_raw(k, i, sizeof v, &v); }
  void set_arg(cl_kernel k, cl_uint i, cl_int v) { set_raw(k, i, sizeof v, &v); }
  void set_arg(cl_kernel k, cl_uint i, cl_float v) { set_raw(k, i, sizeof v, &v); }
  void set_arg(cl_kernel k, cl_uint i, cl_ulong v) { set_raw(k, i, sizeof v, &v); }
  void set_arg(cl_kernel k, cl_uint i, LocalFloats v) { set_raw(k, i, v.count * kF32, nullptr); }
  template <typename T>
  void set_arg(cl_kernel, cl_uint, T) = delete;  // only the OpenCL types the kernels declare
  void set_raw(cl_kernel k, cl_uint i, size_t n, const void* v) {
    cl_check(api().clSetKernelArg(k, i, n, v), "clSetKernelArg");
  }

  template <typename... Args>
  void launch(Kernel which, std::vector<size_t> global, std::vector<size_t> local, Args... args) {
    cl_kernel k = rt_->kernel(which);
    cl_uint i = 0;
    (set_arg(k, i++, args), ...);
    const cl_int err = api().clEnqueueNDRangeKernel(rt_->queue(), k, static_cast<cl_uint>(global.size()), nullptr,
                                                    global.data(), local.data(), 0, nullptr, nullptr);
    if (err != CL_SUCCESS) throw opencl::ClError(opencl::kernel_name(which), err);
  }

  static std::vector<size_t> tile_global(int cols, int rows) {
    return {size_t((cols + opencl::kTile - 1) / opencl::kTile) * opencl::kTileWg,
            size_t((rows + opencl::kTile - 1) / opencl::kTile) * opencl::kTileWg};
  }
  static std::vector<size_t> tile_local() { return {size_t(opencl::kTileWg), size_t(opencl::kTileWg)}; }
  static std::vector<size_t> attention_global(int T, int heads) {
    return {size_t(opencl::kAttTile), size_t((T + opencl::kAttTile - 1) / opencl::kAttTile) * opencl::kAttTile,
            size_t(heads)};
  }
  static std::vector<size_t> attention_local() { return {size_t(opencl::kAttTile), size_t(opencl::kAttTile), 1}; }
  static size_t pointwise_global(size_t n) { return round_up(n, opencl::kPointwiseWg); }
  static float attention_scale(int HD) { return static_cast<float>(1.0 / std::sqrt(double(HD))); }

  void enqueue_linear_fwd(Kernel k, cl_mem out, cl_mem x, cl_mem w, size_t w_stride, cl_mem bias, bool has_bias, int N,
                          int C, int OC, float alpha, bool accumulate) {
    launch(k, tile_global(OC, N), tile_local(), out, x, w, cl_ulong(w_stride), bias, cl_int(has_bias), N, C, OC, alpha,
           cl_int(accumulate));
  }
  void enqueue_linear_bwd(Kernel k, cl_mem dx, cl_mem dout, cl_mem w, size_t w_stride, int N, int C, int OC,
                          float alpha, bool accumulate) {
    launch(k, tile_global(C, N), tile_local(), dx, dout, w, cl_ulong(w_stride), N, C, OC, alpha, cl_int(accumulate));
  }
  // out (I,J) += alpha * P^T Q, P (N,I), Q (N,J).
  void enqueue_matmul_tn(cl_mem out, cl_mem P, cl_mem Q, int N, int I, int J, float alpha) {
    launch(Kernel::kMatmulTn, tile_global(J, I), tile_local(), out, P, Q, N, I, J, alpha, cl_int(1));
  }

  void rope(float* out, const float* in_, int B, int T, int NH, int HD, int pos0, const float* inv_freq,
            bool backward) {
    const size_t n = size_t(B) * T * NH * HD;
    if (n == 0) return;
    if (HD % 2 != 0 || !fits({n})) {
      if (backward) return fallback().rope_backward(out, in_, B, T, NH, HD, pos0, inv_freq);
      return fallback().rope_forward(out, in_, B, T, NH, HD, pos0, inv_freq);
    }
    const cl_mem table = rope_table(T, HD, pos0, inv_freq);
    const cl_mem ib = in(in_, n), ob = out_buf(out, n, backward);
    const size_t pairs = n / 2;
    launch(Kernel::kRope, {pointwise_global(pairs)}, {size_t(opencl::kPointwiseWg)}, ob, ib, table, T, NH, HD,
           cl_float(backward ? -1.0f : 1.0f), cl_int(backward), cl_ulong(pairs));
    finish_op(ob, out, n);
  }

  // cos/sin of (pos0 + t) * inv_freq[i] for t < T, i < HD/2, in double as ref::rope_forward, cached by the
  // frequencies' values: every layer of a step uses the same table.
  cl_mem rope_table(int T, int HD, int pos0, const float* inv_freq) {
    const auto key = std::make_tuple(T, HD, pos0, std::vector<float>(inv_freq, inv_freq + HD / 2));
    auto it = rope_tables_.find(key);
    if (it != rope_tables_.end()) return it->second;
    if (rope_tables_.size() >= kMaxRopeTables) {  // a handful of (T, pos0) shapes per session: drop them all
      for (auto& [k, mem] : rope_tables_) api().clReleaseMemObject(mem);
      rope_tables_.clear();
    }
    const int half = HD / 2;
    std::vector<float> cs(size_t(T) * half * 2);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < half; ++i) {
        const double angle = double(pos0 + t) * double(inv_freq[i]);
        cs[(size_t(t) * half + i) * 2] = static_cast<float>(std::cos(angle));
        cs[(size_t(t) * half + i) * 2 + 1] = static_cast<float>(std::sin(angle));
      }
    cl_int err = CL_SUCCESS;
    cl_mem mem = api().clCreateBuffer(rt_->context(), CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, cs.size() * kF32,
                                      cs.data(), &err);
    cl_check(err, "clCreateBuffer(rope table)");
    rope_tables_[key] = mem;
    return mem;
  }

  static constexpr size_t kMaxRopeTables = 16;

  std::unique_ptr<ClRuntime> rt_;  // first: destroyed last
  std::unique_ptr<ClMemory> mem_;
  Backend* fallback_;
  cl_mem dummy_ = nullptr;  // bound where a kernel's optional buffer (bias) is absent
  bool pending_ = false;    // something enqueued since the last clFinish
  std::map<std::tuple<int, int, int, std::vector<float>>, cl_mem> rope_tables_;
};

}  // namespace

std::unique_ptr<Backend> make_opencl_backend(Backend* fallback, std::string* why_not) {
  if (!fallback) {
    if (why_not) *why_not = "make_opencl_backend needs a fallback backend for the ops OpenCL does not run";
    return nullptr;
  }
  std::string reason;
  std::unique_ptr<ClRuntime> rt = ClRuntime::create(&reason);
  if (!rt) {
    if (why_not) *why_not = reason;
    return nullptr;
  }
  try {
    return std::make_unique<OpenClBackend>(std::move(rt), fallback);
  } catch (const std::exception& e) {
    if (why_not) *why_not = e.what();
    return nullptr;
  }
}

}  // namespace confidant
