// Blocking, packing and threading of the CPU matrix product (design notes in matmul_gemm.h).
#include "matmul_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "packed_rows.h"
#include "scratch.h"

namespace confidant::cpu {

namespace {

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
size_t round_up(size_t a, size_t b) { return ceil_div(a, b) * b; }

// Runs fn(i) for i in [0, n) on the pool, handing indices out one at a time so uneven tasks (edge blocks, a busy
// core on a phone) still balance.
template <class Fn>
void run_tasks(ThreadPool& pool, size_t n, const Fn& fn) {
  if (n == 0) return;
  if (n == 1 || pool.size() == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  const size_t workers = std::min<size_t>(pool.size(), n);
  pool.parallel_for(workers, 1, [&](size_t, size_t) {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
  });
}

inline void store_out(const Gemm& g, int n, int m, float v) {
  if (g.bias) v += g.bias[m];
  float* p = g.out_transposed ? g.out + size_t(m) * g.ldo + n : g.out + size_t(n) * g.ldo + m;
  *p = g.accumulate ? *p + v : v;
}

// One k block of one segment.
struct KBlock {
  int seg, k0, kc;
};

// ---- few rows: per output column, dequantise the weight row in runs and dot it with every activation row ----

// Weight-run length of the dot-product path (a multiple of kGroup; fits L1 with the activation runs).
constexpr int kGemvRun = 1024;

void gemv(ThreadPool& pool, const MatmulKernels& kr, const Gemm& g) {
  const size_t cols_per_task = std::clamp<size_t>(ceil_div(g.M, size_t(pool.size()) * 8), 1, 64);
  run_tasks(pool, ceil_div(g.M, cols_per_task), [&](size_t t) {
    float* run = thread_scratch(ScratchSlot::WeightPanel, kGemvRun);
    const int m_end = int(std::min<size_t>(g.M, (t + 1) * cols_per_task));
    for (int m = int(t * cols_per_task); m < m_end; ++m) {
      float total[kGemvMaxRows] = {};
      for (int s = 0; s < g.nseg; ++s) {
        const GemmSegment& sg = g.seg[s];
        float acc[kGemvMaxRows] = {};
        if (sg.W.dtype == WDType::F32) {  // nothing to dequantise: read the weight row in place
          kr.dot_rows(reinterpret_cast<const float*>(packed_at(sg.W, m, 0)), sg.act, sg.lda, g.N, sg.K, acc);
        } else {
          for (int k0 = 0; k0 < sg.K; k0 += kGemvRun) {
            const int kc = std::min(kGemvRun, sg.K - k0);
            kr.dequant(sg.W, m, k0, kc, run);
            kr.dot_rows(run, sg.act + k0, sg.lda, g.N, kc, acc);
          }
        }
        for (int n = 0; n < g.N; ++n) total[n] += sg.act_scale * acc[n];
      }
      for (int n = 0; n < g.N; ++n) store_out(g, n, m, total[n]);
    }
  });
}

// ---- many rows: packed activation blocks x dequantised weight panels ----

struct Plan {
  const Gemm& g;
  const MatmulKernels& kr;
  std::vector<KBlock> blocks;
  size_t block_floats;  // kr.kc * mc: one k block of the packed activation block
  int mc;               // activation rows per packed block (a multiple of nv)
  int nc;               // output columns per task
  float* xp;            // blocks.size() * block_floats, [block][chunk][k][nv]
};

// Packs rows [i0 + chunk * nv, + nv) of one k block transposed: dst[k * nv + v] = scale * act[row v][k0 + k].
void pack_chunk(const Plan& p, const KBlock& b, int i0, int chunk, float* dst) {
  const int nv = p.kr.nv;
  const GemmSegment& s = p.g.seg[b.seg];
  for (int v = 0; v < nv; ++v) {
    const int n = i0 + chunk * nv + v;
    if (n < p.g.N) {
      const float* src = s.act + size_t(n) * s.lda + b.k0;
      for (int k = 0; k < b.kc; ++k) dst[size_t(k) * nv + v] = s.act_scale * src[k];
    } else {
      for (int k = 0; k < b.kc; ++k) dst[size_t(k) * nv + v] = 0.0f;
    }
  }
}

// Asks for the cache lines of a byte run, to be written.
void prefetch_for_write(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 1, 3);
  if (bytes) __builtin_prefetch(c + bytes - 1, 1, 3);
}

// Output rows [n0, n1) x columns [m0, m1) (element (n, m) wherever out_transposed puts it), asked into cache
// for writing: the output matrix is far bigger than the caches, and storing into lines (and pages) that are not
// there stalls on every one of them.
void prefetch_output(const Gemm& g, int n0, int n1, int m0, int m1) {
  if (n1 <= n0 || m1 <= m0) return;
  if (g.out_transposed) {
    for (int m = m0; m < m1; ++m) prefetch_for_write(g.out + size_t(m) * g.ldo + n0, size_t(n1 - n0) * sizeof(float));
  } else {
    for (int n = n0; n < n1; ++n) prefetch_for_write(g.out + size_t(n) * g.ldo + m0, size_t(m1 - m0) * sizeof(float));
  }
}

// Writes a finished piece of the tile ([column][row], row stride ldc, starting at output (n0, m0)) to output rows
// [n0, n1) x columns [m0, m0 + cols), with bias and the accumulate option; the transposed-output case (row-major
// outputs use the level's store_piece).
void write_piece(const Gemm& g, const float* tile, size_t ldc, int n0, int n1, int m0, int cols) {
  for (int m = 0; m < cols; ++m)
    for (int n = n0; n < n1; ++n) store_out(g, n, m0 + m, tile[size_t(m) * ldc + (n - n0)]);
}

// Output columns [m0, m0 + cols) x packed row chunks [ch0, ch1) of the block starting at row i0.
// Per k block: dequantise this task's whole weight panel (kc x cols, L2-sized), then go chunk-major: one chunk of
// packed activation rows (nv x kc) stays in L1 while the panel's mr-column strips stream past it from L2. (Panel-
// major, streaming the activation chunks instead, moves twice the bytes from L2 per FMA and measured slower.)
// Each (strip, chunk) tile call is a "piece"; in the last k block each piece is written out right after its tile
// call, while it is still in L1, and the next piece's output lines are prefetched, so the writes to the big
// output matrix overlap the multiplications.
void compute_task(const Plan& p, int i0, int m0, int ch0, int ch1) {
  const Gemm& g = p.g;
  const MatmulKernels& kr = p.kr;
  const int mr = kr.mr, nv = kr.nv, nch = ch1 - ch0;
  const int cols = std::min(p.nc, g.M - m0);
  const int cols_pad = int(round_up(cols, mr)), npanels = cols_pad / mr;
  // One spare cache line per tile row: with a power-of-two row stride the tile's columns all land in a few L1
  // sets and evict each other when they are read back.
  const size_t ldc = size_t(nch) * nv + 16;
  float* tile = thread_scratch(ScratchSlot::Tile, cols_pad * ldc);  // [column][row]
  const bool rows_layout = g.layout == WeightLayout::Rows;
  // Weight rows: strip j is mr dequantised weight rows of pitch wrows_pitch. Weight columns: kc rows of cols_pad.
  const size_t strip_floats = size_t(mr) * kr.wrows_pitch;
  float* panel = thread_scratch(ScratchSlot::WeightPanel,
                                rows_layout ? npanels * strip_floats : size_t(kr.kc) * cols_pad);
  const int calls = npanels * nch;  // tile calls per k block
  // Piece `call` of a k block: its first output column jr (relative to m0) and row chunk ch (relative to ch0).
  auto piece = [&](int call, int* jr, int* ch) {
    *jr = call % npanels * mr;
    *ch = call / npanels;
  };
  // Output rows of row chunk ch, clipped to N.
  auto rows_of = [&](int ch, int* n0, int* n1) {
    *n0 = i0 + (ch0 + ch) * nv;
    *n1 = std::min(g.N, *n0 + nv);
  };

  for (size_t bi = 0; bi < p.blocks.size(); ++bi) {
    const KBlock& b = p.blocks[bi];
    const WeightView& W = g.seg[b.seg].W;
    const float* xp = p.xp + bi * p.block_floats + size_t(ch0) * b.kc * nv;
    const bool acc = bi > 0, last = bi + 1 == p.blocks.size();
    if (rows_layout) {
      for (int j = 0; j < cols_pad; ++j) {  // weight row m0 + j -> strip j / mr, row j % mr
        float* dst = panel + size_t(j / mr) * strip_floats + size_t(j % mr) * kr.wrows_pitch;
        if (j < cols) kr.dequant(W, m0 + j, b.k0, b.kc, dst);
        else std::memset(dst, 0, size_t(b.kc) * sizeof(float));
      }
    } else {
      for (int k = 0; k < b.kc; ++k) {
        float* dst = panel + size_t(k) * cols_pad;
        kr.dequant(W, b.k0 + k, m0, cols, dst);
        std::memset(dst + cols, 0, (cols_pad - cols) * sizeof(float));
      }
    }
    for (int call = 0; call < calls; ++call) {
      int jr, ch;
      piece(call, &jr, &ch);
      float* c = tile + size_t(jr) * ldc + size_t(ch) * nv;
      const float* x = xp + size_t(ch) * b.kc * nv;
      if (rows_layout) kr.tile_wrows(b.kc, panel + size_t(jr / mr) * strip_floats, x, c, ldc, acc);
      else kr.tile_wcols(b.kc, panel + jr, cols_pad, x, c, ldc, acc);

      const int pcols = std::min(mr, cols - jr);  // real (not padding) columns of this piece
      if (last && pcols > 0) {
        int n0, n1;
        if (call + 1 < calls) {  // prefetch the next piece's output, then write this one
          int njr, nch_;
          piece(call + 1, &njr, &nch_);
          rows_of(nch_, &n0, &n1);
          prefetch_output(g, n0, n1, m0 + njr, m0 + std::min(cols, njr + mr));
        }
        rows_of(ch, &n0, &n1);
        if (g.out_transposed) {
          write_piece(g, c, ldc, n0, n1, m0 + jr, pcols);
        } else {
          kr.store_piece(c, ldc, n1 - n0, pcols, g.out + size_t(n0) * g.ldo + m0 + jr, g.ldo,
                         g.bias ? g.bias + m0 + jr : nullptr, g.accumulate);
        }
      }
    }
  }
}

void gemm_blocked(ThreadPool& pool, const MatmulKernels& kr, const Gemm& g, std::vector<KBlock> blocks) {
  const int nv = kr.nv;
  const size_t row_blocks = ceil_div(g.N, kr.mc);
  const int mc = int(round_up(ceil_div(g.N, row_blocks), nv));  // equal blocks, no sliver at the end
  Plan p{g, kr, std::move(blocks), size_t(kr.kc) * mc, mc, g.layout == WeightLayout::Rows ? kr.nc_rows : kr.nc_cols,
         nullptr};
  p.xp = thread_scratch(ScratchSlot::PackedActivations, p.blocks.size() * p.block_floats);
  const size_t col_tasks = ceil_div(g.M, p.nc);

  for (int i0 = 0; i0 < g.N; i0 += mc) {
    const int chunks = int(ceil_div(std::min(mc, g.N - i0), nv));
    run_tasks(pool, p.blocks.size() * chunks, [&](size_t t) {
      const size_t bi = t / chunks;
      const int ch = int(t % chunks);
      pack_chunk(p, p.blocks[bi], i0, ch, p.xp + bi * p.block_floats + size_t(ch) * p.blocks[bi].kc * nv);
    });
    // Few column blocks (narrow outputs such as the LoRA rank): also split the rows so every thread has work.
    const size_t want = 2 * size_t(pool.size());
    const int splits = col_tasks >= want ? 1 : int(std::min<size_t>(chunks, ceil_div(want, col_tasks)));
    run_tasks(pool, col_tasks * splits, [&](size_t t) {
      const int m0 = int(t / splits) * p.nc, s = int(t % splits);
      const int ch0 = chunks * s / splits, ch1 = chunks * (s + 1) / splits;
      if (ch1 > ch0) compute_task(p, i0, m0, ch0, ch1);
    });
  }
}

void check_weights(const Gemm& g, const GemmSegment& s) {
  const bool rows = g.layout == WeightLayout::Rows;
  if ((rows ? s.W.rows : s.W.cols) != g.M || (rows ? s.W.cols : s.W.rows) != s.K) {
    throw std::invalid_argument("cpu matmul: weight view shape does not match the op's dimensions");
  }
  if (wdtype_is_grouped(s.W.dtype) && (rows ? s.K : g.M) % kGroup != 0) {
    throw std::invalid_argument("cpu matmul: grouped weight formats need a multiple of 32 input features");
  }
}

}  // namespace

void gemm_run(ThreadPool& pool, const MatmulKernels& kr, const Gemm& g) {
  if (g.N <= 0 || g.M <= 0) return;
  std::vector<KBlock> blocks;
  for (int s = 0; s < g.nseg; ++s) {
    check_weights(g, g.seg[s]);
    for (int k0 = 0; k0 < g.seg[s].K; k0 += kr.kc) blocks.push_back({s, k0, std::min(kr.kc, g.seg[s].K - k0)});
  }
  if (blocks.empty()) {  // K == 0: the product is zero
    for (int n = 0; n < g.N; ++n)
      for (int m = 0; m < g.M; ++m) store_out(g, n, m, 0.0f);
    return;
  }
  if (g.layout == WeightLayout::Rows && g.N <= kGemvMaxRows) {
    gemv(pool, kr, g);
    return;
  }
  gemm_blocked(pool, kr, g, std::move(blocks));
}

}  // namespace confidant::cpu
