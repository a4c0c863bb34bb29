// Work distribution helpers for the CPU ops on top of ThreadPool::parallel_for (which hands each thread one
// contiguous chunk). Not used by the matmuls.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

#include "thread_pool.h"

namespace confidant::cpu {

// Runs item(i, scratch) for every i in [0, n_items), handing items out one at a time from an atomic counter so
// items of very different cost (causal attention: late query blocks see more keys) still balance across threads.
// Each thread gets its own scratch of scratch_floats floats, allocated once per call. Put the costliest items first.
template <class Item>
void parallel_dynamic(ThreadPool& pool, size_t n_items, size_t scratch_floats, const Item& item) {
  if (n_items == 0) return;
  std::atomic<size_t> next{0};
  const size_t workers = std::min<size_t>(static_cast<size_t>(pool.size()), n_items);
  pool.parallel_for(workers, 1, [&](size_t, size_t) {
    std::vector<float> scratch(scratch_floats);
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) item(i, scratch.data());
  });
}

// Elements per thread below which an elementwise op is not worth waking workers for (wake-up costs ~10-50 us).
constexpr size_t kMinElemsPerThread = 32 * 1024;

// Rows per chunk so that each chunk has at least kMinElemsPerThread elements.
inline size_t row_grain(size_t row_elems) { return std::max<size_t>(1, kMinElemsPerThread / std::max<size_t>(1, row_elems)); }

}  // namespace confidant::cpu
