// Causal GQA attention on the CPU, flash-attention style: the (T,T) score matrix is never materialised. Forward
// walks key blocks with an online softmax (running row max m and sum l, rescaling the output accumulator) and
// keeps lse = m + log(l) per row; backward (FlashAttention-2) recomputes P = exp(S - lse) per tile and uses
// D = rowsum(dout * out), so it needs only O(T) extra memory per head.
//
// Inner products are arranged as "broadcast one scalar, multiply-add a row of 8-lane vectors": key/value blocks are
// transposed into (HD, kBc) tiles so a query row's kBc scores accumulate in registers, and P @ V style products are
// row axpys. Query rows (and key rows) go in pairs so each loaded vector feeds two multiply-adds, and every block
// is first copied into contiguous scratch (heads are interleaved in memory, so a block's rows are strided).
// Everything is fp32 (the reference accumulates in double; differences are ~1e-6 relative).
//
// Threading: forward items are (batch, head, query block). Backward races on dk/dv (GQA: several query heads feed
// one kv head) and on dq (several key blocks feed one query row), so it either gives each thread whole
// (batch, kv head) pairs (race free, no extra work, but only B*NKV items) or, when that would leave threads idle,
// splits into independent dq items (batch, head, query block) and dk/dv items (batch, kv head, key block) that
// each recompute the probabilities (~7/5 of the work, perfectly parallel).
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_rows.h"
#include "cpu_ops.h"
#include "parallel.h"
#include "vec8.h"

namespace confidant::cpu {
namespace {

constexpr int kBr = kAttnBlock;  // query rows per block
constexpr int kBc = kAttnBlock;  // keys per block: 4 vectors of 8 scores, kept in registers while summing over HD
constexpr int kC8 = kBc / 8;

struct Shape {
  int B, T, NH, NKV, HD, group;
  size_t q_stride, kv_stride;  // floats between consecutive positions of one head in q/out and in k/v
  float scale;                 // 1/sqrt(HD)
  const AttentionRowKernels& rk;
  Shape(int B_, int T_, int NH_, int NKV_, int HD_, SimdLevel level)
      : B(B_), T(T_), NH(NH_), NKV(NKV_), HD(HD_), group(NH_ / NKV_), q_stride(size_t(NH_) * HD_),
        kv_stride(size_t(NKV_) * HD_), scale(float(1.0 / std::sqrt(double(HD_)))), rk(attention_row_kernels(level)) {}
  size_t q_off(int b, int t, int h) const { return (size_t(b) * T + t) * q_stride + size_t(h) * HD; }
  size_t kv_off(int b, int t, int kh) const { return (size_t(b) * T + t) * kv_stride + size_t(kh) * HD; }
  size_t lse_off(int b, int h, int t) const { return (size_t(b) * NH + h) * T + t; }
};

// tile[d*kBc + j] = rows[j*stride + d] for the n (<= kBc) rows of a key or value block; columns j >= n are zero.
void transpose_block(float* tile, const float* rows, size_t stride, int n, int HD) {
  for (int j = 0; j < n; ++j) {
    const float* r = rows + j * stride;
    for (int d = 0; d < HD; ++d) tile[d * kBc + j] = r[d];
  }
  for (int d = 0; d < HD; ++d)
    for (int j = n; j < kBc; ++j) tile[d * kBc + j] = 0.0f;
}

// rows[j*HD + d] = src[j*stride + d]: a contiguous copy of n rows. Rows of one head sit NH*HD or NKV*HD floats
// apart (8 KiB for NH=32, HD=64), so a block of them maps onto a handful of L1 sets and evicts itself; the
// kernels below only ever walk contiguous copies.
void copy_rows(float* rows, const float* src, size_t stride, int n, int HD) {
  for (int j = 0; j < n; ++j) {
    const float* r = src + j * stride;
    float* o = rows + size_t(j) * HD;
    int d = 0;
    for (; d + 8 <= HD; d += 8) store8(o + d, load8(r + d));  // inline: a memcpy call per 256-byte row shows up
    for (; d < HD; ++d) o[d] = r[d];
  }
}

// s0[j] = x0 . tile[:, j] and s1[j] = x1 . tile[:, j] for all kBc columns of a transposed (HD, kBc) tile. Two rows
// share every tile load (the loop is load-bound with one); 16 columns per pass keep the 8 vector accumulators plus
// operands within x86-64's 16 SSE registers (NEON has 32). Accumulators are separate variables, not an array: at
// -O2 GCC keeps an array of vectors in memory.
void rows2_times_tile(float* s0, float* s1, const float* x0, const float* x1, const float* tile, int HD) {
  for (int c = 0; c < kBc; c += 16) {
    F8 a0 = {}, a1 = {}, b0 = {}, b1 = {};
    for (int d = 0; d < HD; ++d) {
      const float* col = tile + d * kBc + c;
      const F8 t0 = load8(col), t1 = load8(col + 8), u = splat8(x0[d]), w = splat8(x1[d]);
      a0 = fma8(u, t0, a0);
      a1 = fma8(u, t1, a1);
      b0 = fma8(w, t0, b0);
      b1 = fma8(w, t1, b1);
    }
    store8(s0 + c, a0);
    store8(s0 + c + 8, a1);
    store8(s1 + c, b0);
    store8(s1 + c + 8, b1);
  }
}

// y0[0:HD) += sum_{j<n} c0[j] * rows[j], y1[0:HD) += sum_{j<n} c1[j] * rows[j] for contiguous (n, HD) rows: the
// two outputs share every row load. y1 may be a scratch row when only one output is wanted.
void axpy2_rows(float* y0, float* y1, const float* c0, const float* c1, const float* rows, int n, int HD) {
  int c = 0;
  for (; c + 16 <= HD; c += 16) {
    F8 a0 = load8(y0 + c), a1 = load8(y0 + c + 8), b0 = load8(y1 + c), b1 = load8(y1 + c + 8);
    for (int j = 0; j < n; ++j) {
      const float* r = rows + size_t(j) * HD + c;
      const F8 r0 = load8(r), r1 = load8(r + 8), u = splat8(c0[j]), w = splat8(c1[j]);
      a0 = fma8(u, r0, a0);
      a1 = fma8(u, r1, a1);
      b0 = fma8(w, r0, b0);
      b1 = fma8(w, r1, b1);
    }
    store8(y0 + c, a0);
    store8(y0 + c + 8, a1);
    store8(y1 + c, b0);
    store8(y1 + c + 8, b1);
  }
  for (; c + 8 <= HD; c += 8) {
    F8 a = load8(y0 + c), b = load8(y1 + c);
    for (int j = 0; j < n; ++j) {
      const F8 r = load8(rows + size_t(j) * HD + c);
      a = fma8(splat8(c0[j]), r, a);
      b = fma8(splat8(c1[j]), r, b);
    }
    store8(y0 + c, a);
    store8(y1 + c, b);
  }
  for (; c < HD; ++c) {  // HD not a multiple of 8
    float a = y0[c], b = y1[c];
    for (int j = 0; j < n; ++j) {
      a += c0[j] * rows[size_t(j) * HD + c];
      b += c1[j] * rows[size_t(j) * HD + c];
    }
    y0[c] = a;
    y1[c] = b;
  }
}

// x[0:n) *= a
void scale_row(float* x, float a, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) store8(x + i, load8(x + i) * a);
  for (; i < n; ++i) x[i] *= a;
}

float dot(const float* a, const float* b, int n) {
  F8 acc = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) acc = fma8(load8(a + i), load8(b + i), acc);
  float s = hsum8(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// ---------------------------------------------------------------------------------------------------- forward

size_t forward_scratch_floats(int HD) { return size_t(2 * kBr + 2 * kBc + 1) * HD + 2 * kBr + 2 * kBc; }

// Online softmax step of one query row over one key block: masks keys >= n_valid, turns the scaled scores s into
// p = exp(s - m_new), folds them into the running max m and sum l, and rescales the row's output accumulator.
void softmax_step(float* s, int n_valid, float* m, float* l, float* acc_row, int HD) {
  for (int j = n_valid; j < kBc; ++j) s[j] = -INFINITY;
  F8 mx = load8(s);
  for (int c = 1; c < kC8; ++c) mx = max8(mx, load8(s + 8 * c));
  const float m_new = std::max(*m, hmax8(mx));
  F8 sum = {};
  for (int c = 0; c < kC8; ++c) {
    const F8 p = exp8(load8(s + 8 * c) - m_new);  // masked -inf scores give exactly 0
    store8(s + 8 * c, p);
    sum += p;
  }
  const float alpha = std::exp(*m - m_new);  // rescales what was accumulated under the old max (0 at first)
  *l = *l * alpha + hsum8(sum);
  if (alpha != 1.0f) scale_row(acc_row, alpha, HD);
  *m = m_new;
}

// Query rows [t0, t1) of head h: online softmax over key blocks 0 .. t1-1, rows taken in pairs.
void forward_block(const Shape& sh, float* out, float* lse, const float* q, const float* k, const float* v, int b,
                   int h, int t0, int t1, float* scratch) {
  const int HD = sh.HD, kh = h / sh.group;
  float* qs = scratch;          // (kBr, HD) query rows pre-multiplied by the softmax scale
  float* acc = qs + kBr * HD;   // (kBr, HD) unnormalised output
  float* kt = acc + kBr * HD;   // (HD, kBc) transposed key block
  float* vb = kt + HD * kBc;    // (kBc, HD) value block
  float* spare = vb + kBc * HD; // (HD) output row for the missing partner of an odd last row
  float* m = spare + HD;        // (kBr) running max of the scaled scores
  float* l = m + kBr;           // (kBr) running sum of exp(score - m)
  float* s0row = l + kBr;       // (kBc) scores, then probabilities, of the first row of a pair
  float* s1row = s0row + kBc;   // (kBc) ... of the second
  for (int t = t0; t < t1; ++t) {
    const int i = t - t0;
    const float* qt = q + sh.q_off(b, t, h);
    for (int d = 0; d < HD; ++d) qs[i * HD + d] = qt[d] * sh.scale;
    std::fill(acc + i * HD, acc + (i + 1) * HD, 0.0f);
    m[i] = -INFINITY;
    l[i] = 0.0f;
  }
  for (int s0 = 0; s0 < t1; s0 += kBc) {
    const int nk = std::min(kBc, t1 - s0);  // keys past t1-1 are masked for every row of the block
    transpose_block(kt, k + sh.kv_off(b, s0, kh), sh.kv_stride, nk, HD);
    copy_rows(vb, v + sh.kv_off(b, s0, kh), sh.kv_stride, nk, HD);
    for (int t = std::max(t0, s0); t < t1; t += 2) {
      const int i = t - t0;
      const bool two = t + 1 < t1;
      const int i1 = two ? i + 1 : i;
      sh.rk.rows2_times_tile(s0row, s1row, qs + i * HD, qs + i1 * HD, kt, HD);
      int n_valid = std::min(nk, t - s0 + 1);  // causal: keys s0 .. t
      sh.rk.softmax_step(s0row, n_valid, m + i, l + i, acc + i * HD, HD);
      float* y1 = spare;
      if (two) {
        n_valid = std::min(nk, t + 1 - s0 + 1);  // the first row's p is 0 at its extra key
        sh.rk.softmax_step(s1row, n_valid, m + i1, l + i1, acc + i1 * HD, HD);
        y1 = acc + i1 * HD;
      }
      sh.rk.axpy2_rows(acc + i * HD, y1, s0row, two ? s1row : s0row, vb, n_valid, HD);
    }
  }
  for (int t = t0; t < t1; ++t) {
    const int i = t - t0;
    const float inv_l = 1.0f / l[i];
    float* ot = out + sh.q_off(b, t, h);
    for (int d = 0; d < HD; ++d) ot[d] = acc[i * HD + d] * inv_l;  // once per row: scalar is fine
    if (lse) lse[sh.lse_off(b, h, t)] = m[i] + std::log(l[i]);
  }
}

// --------------------------------------------------------------------------------------------------- backward

struct Grads {
  float *dq, *dk, *dv;
  const float *dout, *out, *lse, *q, *k, *v;
  const float* D;  // (B,NH,T) rowsum(dout * out) = sum_j p_j dp_j, FlashAttention-2's D
};

// A key block [s0, s0+nk) of kv head kh, transposed and copied, with its dk/dv accumulators.
struct KeyBlock {
  int s0, nk;
  const float *kt, *vt;    // (HD, kBc)
  const float* krows;      // (kBc, HD)
  float *dk_acc, *dv_acc;  // (kBc, HD), or null when only dq is wanted
};

// Key blocks handled together: each query block's rows are fetched once per kKeyGroup key blocks instead of once
// per key block (q and dout of a head do not stay in cache across a whole pass at T >= 512).
constexpr int kKeyGroup = 4;

size_t key_block_floats(int HD) { return 5 * size_t(kBc) * HD; }
size_t tile_scratch_floats(int HD) { return 4 * kBc + 2 * size_t(kBc) * kBr + size_t(HD); }
// kKeyGroup key blocks, the query block's q and dout rows, then one tile's scratch.
size_t backward_scratch_floats(int HD) {
  return kKeyGroup * key_block_floats(HD) + 2 * size_t(kBr) * HD + tile_scratch_floats(HD);
}

// Transposes and copies key block [s0, s0+kBc) of kv head kh into mem (key_block_floats), zeroing its
// accumulators when with_acc.
KeyBlock load_key_block(const Shape& sh, const Grads& g, int b, int kh, int s0, bool with_acc, float* mem) {
  const int HD = sh.HD, nk = std::min(kBc, sh.T - s0);
  float* kt = mem;
  float* vt = kt + HD * kBc;
  float* krows = vt + HD * kBc;
  float* dk_acc = krows + kBc * HD;
  float* dv_acc = dk_acc + kBc * HD;
  transpose_block(kt, g.k + sh.kv_off(b, s0, kh), sh.kv_stride, nk, HD);
  transpose_block(vt, g.v + sh.kv_off(b, s0, kh), sh.kv_stride, nk, HD);
  copy_rows(krows, g.k + sh.kv_off(b, s0, kh), sh.kv_stride, nk, HD);
  if (!with_acc) return {s0, nk, kt, vt, krows, nullptr, nullptr};
  std::fill(dk_acc, dk_acc + 2 * kBc * HD, 0.0f);
  return {s0, nk, kt, vt, krows, dk_acc, dv_acc};
}

// dk, dv rows of the block += its accumulators.
void store_key_block(const Shape& sh, const Grads& g, int b, int kh, const KeyBlock& kb) {
  const int HD = sh.HD;
  for (int j = 0; j < kb.nk; ++j) {
    float* dkj = g.dk + sh.kv_off(b, kb.s0 + j, kh);
    float* dvj = g.dv + sh.kv_off(b, kb.s0 + j, kh);
    for (int d = 0; d < HD; ++d) {
      dkj[d] += kb.dk_acc[j * HD + d];
      dvj[d] += kb.dv_acc[j * HD + d];
    }
  }
}

// Turns one row's scores s (unscaled q.k) and dp (dout.v) into p = exp(s*scale - lse) and
// dS = p * (dp - D) * scale, in place; keys >= n_valid get p = dS = 0.
void probs_and_ds(float* s, float* dp, int n_valid, float lse_t, float D, float scale) {
  for (int j = n_valid; j < kBc; ++j) s[j] = -INFINITY;
  for (int c = 0; c < kC8; ++c) {
    const F8 p = exp8(load8(s + 8 * c) * scale - lse_t);  // masked: -inf -> 0
    store8(s + 8 * c, p);
    store8(dp + 8 * c, p * (load8(dp + 8 * c) - D) * scale);
  }
}

const AttentionRowKernels kPortableRowKernels = {rows2_times_tile, axpy2_rows, softmax_step, probs_and_ds};

// Query rows [tq0, tq1) of head h (q rows copied in qb, dout rows in gb) against one key block, rows in pairs:
// recomputes P and dS, then dq rows += dS @ K (when do_dq) and dk_acc += dS^T @ Q, dv_acc += P^T @ dout (when the
// block has accumulators).
void backward_tile(const Shape& sh, const Grads& g, int b, int h, int tq0, int tq1, const float* qb, const float* gb,
                   const KeyBlock& kb, bool do_dq, float* scratch) {
  const int t0 = std::max(tq0, kb.s0);  // rows before the block see none of its keys
  if (t0 >= tq1) return;
  const int HD = sh.HD, rows = tq1 - t0;
  qb += size_t(t0 - tq0) * HD;
  gb += size_t(t0 - tq0) * HD;
  float* sa = scratch;           // (kBc) scores -> P of the first row of a pair
  float* sb = sa + kBc;          // (kBc) ... of the second
  float* da = sb + kBc;          // (kBc) dout.v -> dS (scaled) of the first row
  float* db = da + kBc;          // (kBc) ... of the second
  float* pt = db + kBc;          // (kBc, kBr) P^T, for dv
  float* dst = pt + kBc * kBr;   // (kBc, kBr) dS^T, for dk
  float* spare = dst + kBc * kBr;  // (HD) output row for the missing partner of an odd count
  for (int i = 0; i < rows; i += 2) {
    const bool two = i + 1 < rows;
    const int i1 = two ? i + 1 : i, t = t0 + i;
    sh.rk.rows2_times_tile(sa, sb, qb + i * HD, qb + i1 * HD, kb.kt, HD);
    sh.rk.rows2_times_tile(da, db, gb + i * HD, gb + i1 * HD, kb.vt, HD);
    int n_valid = std::min(kb.nk, t - kb.s0 + 1);
    sh.rk.probs_and_ds(sa, da, n_valid, g.lse[sh.lse_off(b, h, t)], g.D[sh.lse_off(b, h, t)], sh.scale);
    if (two) {
      n_valid = std::min(kb.nk, t + 1 - kb.s0 + 1);  // the first row's p and dS are 0 at its extra key
      sh.rk.probs_and_ds(sb, db, n_valid, g.lse[sh.lse_off(b, h, t + 1)], g.D[sh.lse_off(b, h, t + 1)], sh.scale);
    }
    for (int j = 0; j < kb.nk; ++j) {
      pt[j * kBr + i] = sa[j];
      dst[j * kBr + i] = da[j];
    }
    if (two)
      for (int j = 0; j < kb.nk; ++j) {
        pt[j * kBr + i1] = sb[j];
        dst[j * kBr + i1] = db[j];
      }
    if (do_dq)
      sh.rk.axpy2_rows(g.dq + sh.q_off(b, t, h), two ? g.dq + sh.q_off(b, t + 1, h) : spare, da, two ? db : da, kb.krows,
                 n_valid, HD);
  }
  if (!kb.dk_acc) return;
  for (int j = 0; j < kb.nk; j += 2) {
    const int i0 = std::max(0, kb.s0 + j - t0);  // rows before key s0+j have p = 0 for it (and for key s0+j+1)
    if (i0 >= rows) break;
    const bool two = j + 1 < kb.nk;
    const int j1 = two ? j + 1 : j;
    sh.rk.axpy2_rows(kb.dv_acc + j * HD, two ? kb.dv_acc + j1 * HD : spare, pt + j * kBr + i0, pt + j1 * kBr + i0,
               gb + i0 * HD, rows - i0, HD);
    sh.rk.axpy2_rows(kb.dk_acc + j * HD, two ? kb.dk_acc + j1 * HD : spare, dst + j * kBr + i0, dst + j1 * kBr + i0,
               qb + i0 * HD, rows - i0, HD);
  }
}

// Key blocks [blk0, blk1) (at most kKeyGroup) of kv head kh against every later query row of every query head in
// its group; adds their dk/dv into the outputs, and dq rows too when do_dq.
void backward_key_range(const Shape& sh, const Grads& g, int b, int kh, int blk0, int blk1, bool do_dq,
                        float* scratch) {
  const int HD = sh.HD, nkb = blk1 - blk0;
  KeyBlock kbs[kKeyGroup];
  for (int i = 0; i < nkb; ++i)
    kbs[i] = load_key_block(sh, g, b, kh, (blk0 + i) * kBc, true, scratch + i * key_block_floats(HD));
  float* qb = scratch + kKeyGroup * key_block_floats(HD);
  float* gb = qb + kBr * HD;
  float* tile_scratch = gb + kBr * HD;
  for (int h = kh * sh.group; h < (kh + 1) * sh.group; ++h)
    for (int tq0 = blk0 * kBc; tq0 < sh.T; tq0 += kBr) {
      const int tq1 = std::min(tq0 + kBr, sh.T);
      copy_rows(qb, g.q + sh.q_off(b, tq0, h), sh.q_stride, tq1 - tq0, HD);
      copy_rows(gb, g.dout + sh.q_off(b, tq0, h), sh.q_stride, tq1 - tq0, HD);
      for (int i = 0; i < nkb; ++i) backward_tile(sh, g, b, h, tq0, tq1, qb, gb, kbs[i], do_dq, tile_scratch);
    }
  for (int i = 0; i < nkb; ++i) store_key_block(sh, g, b, kh, kbs[i]);
}

// dq for query rows [tq0, tq1) of head h, from key blocks 0 .. tq1-1 (no dk/dv).
void backward_query_block(const Shape& sh, const Grads& g, int b, int h, int tq0, int tq1, float* scratch) {
  const int HD = sh.HD, kh = h / sh.group;
  float* qb = scratch + kKeyGroup * key_block_floats(HD);  // same layout as backward_key_range, one key block used
  float* gb = qb + kBr * HD;
  float* tile_scratch = gb + kBr * HD;
  copy_rows(qb, g.q + sh.q_off(b, tq0, h), sh.q_stride, tq1 - tq0, HD);
  copy_rows(gb, g.dout + sh.q_off(b, tq0, h), sh.q_stride, tq1 - tq0, HD);
  for (int s0 = 0; s0 < tq1; s0 += kBc) {
    const KeyBlock kb = load_key_block(sh, g, b, kh, s0, false, scratch);
    backward_tile(sh, g, b, h, tq0, tq1, qb, gb, kb, true, tile_scratch);
  }
}

// Whether whole (batch, kv head) items finish sooner than the split dq + dk/dv items, in units of one pair's work:
// fused costs ceil(items/threads) rounds of 5 tile products, split costs about 7 per pair spread over all threads.
bool backward_fused(int pairs, int threads) {
  const long rounds = (pairs + threads - 1) / threads;
  return rounds * 5L * threads <= 7L * pairs;
}

}  // namespace

const AttentionRowKernels& attention_row_kernels(SimdLevel level) {
#if defined(CONFIDANT_CPU_X86)
  if (level == SimdLevel::Avx2 || level == SimdLevel::Avx512) return attention_row_kernels_avx2();
#endif
  (void)level;
  return kPortableRowKernels;
}

void attention_forward(ThreadPool& pool, SimdLevel level, float* out, float* lse, const float* q, const float* k, const float* v, int B,
                       int T, int NH, int NKV, int HD) {
  if (B <= 0 || T <= 0 || NH <= 0) return;
  const Shape sh(B, T, NH, NKV, HD, level);
  const int nqb = (T + kBr - 1) / kBr;
  const size_t per_block = size_t(B) * NH;
  // Item order: last query blocks (the most keys) first, so the cheap ones fill in at the end.
  parallel_dynamic(pool, per_block * nqb, forward_scratch_floats(HD), [&](size_t item, float* scratch) {
    const int qb = nqb - 1 - int(item / per_block);
    const int bh = int(item % per_block), b = bh / NH, h = bh % NH;
    const int t0 = qb * kBr;
    forward_block(sh, out, lse, q, k, v, b, h, t0, std::min(t0 + kBr, T), scratch);
  });
}

void attention_backward(ThreadPool& pool, SimdLevel level, float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int B, int T, int NH,
                        int NKV, int HD) {
  if (B <= 0 || T <= 0 || NH <= 0) return;
  const Shape sh(B, T, NH, NKV, HD, level);
  // D once per row up front: inside the tiles it would be recomputed for every key block.
  std::vector<float> D(size_t(B) * NH * T);
  pool.parallel_for(size_t(B) * T, std::max(1, 8192 / (NH * HD)), [&](size_t r0, size_t r1) {
    for (size_t bt = r0; bt < r1; ++bt)
      for (int h = 0; h < NH; ++h)
        D[sh.lse_off(int(bt / T), h, int(bt % T))] =
            dot(dout + bt * sh.q_stride + size_t(h) * HD, out + bt * sh.q_stride + size_t(h) * HD, HD);
  });
  const Grads g{dq, dk, dv, dout, out, lse, q, k, v, D.data()};
  const size_t scratch = backward_scratch_floats(HD);
  const int nblk = (T + kBc - 1) / kBc;  // kBr == kBc: query and key blocks line up
  static_assert(kBr == kBc, "query and key blocks are assumed to line up");

  const int nranges = (nblk + kKeyGroup - 1) / kKeyGroup;
  if (backward_fused(B * NKV, pool.size())) {
    parallel_dynamic(pool, size_t(B) * NKV, scratch, [&](size_t item, float* s) {
      const int b = int(item) / NKV, kh = int(item) % NKV;
      for (int r = 0; r < nranges; ++r)
        backward_key_range(sh, g, b, kh, r * kKeyGroup, std::min(nblk, (r + 1) * kKeyGroup), true, s);
    });
    return;
  }
  // Split: dq items (b, h, query block) and dk/dv items (b, kh, range of key blocks) write disjoint outputs, so
  // they share one queue, ordered by estimated cost (tile products) so the largest start first.
  struct Task {
    long cost;
    int kind, b, head, blk;  // kind 0: dq of query block blk of head; 1: dk/dv of key range blk of kv head
  };
  std::vector<Task> tasks;
  tasks.reserve(size_t(B) * (NH * nblk + NKV * nranges));
  for (int b = 0; b < B; ++b) {
    for (int blk = 0; blk < nblk; ++blk)
      for (int h = 0; h < NH; ++h) tasks.push_back({3L * (blk + 1), 0, b, h, blk});
    for (int r = 0; r < nranges; ++r) {
      long tiles = 0;
      for (int blk = r * kKeyGroup; blk < std::min(nblk, (r + 1) * kKeyGroup); ++blk) tiles += nblk - blk;
      for (int kh = 0; kh < NKV; ++kh) tasks.push_back({4L * sh.group * tiles, 1, b, kh, r});
    }
  }
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& x, const Task& y) { return x.cost > y.cost; });
  parallel_dynamic(pool, tasks.size(), scratch, [&](size_t item, float* s) {
    const Task& task = tasks[item];
    if (task.kind == 0) {
      const int t0 = task.blk * kBr;
      backward_query_block(sh, g, task.b, task.head, t0, std::min(t0 + kBr, T), s);
    } else {
      backward_key_range(sh, g, task.b, task.head, task.blk * kKeyGroup, std::min(nblk, (task.blk + 1) * kKeyGroup),
                         false, s);
    }
  });
}

}  // namespace confidant::cpu
