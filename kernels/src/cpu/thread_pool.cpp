#include "thread_pool.h"

#include <algorithm>

namespace confidant::cpu {

namespace {

// Chunk c of `chunks` equal parts of [0, n).
void chunk_range(size_t n, size_t chunks, size_t c, size_t* begin, size_t* end) {
  *begin = n * c / chunks;
  *end = n * (c + 1) / chunks;
}

}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  const size_t chunks = std::min<size_t>(threads_, std::max<size_t>(1, n / std::max<size_t>(1, grain)));
  if (chunks == 1) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    n_ = n;
    chunks_ = chunks;
    pending_ = static_cast<int>(chunks) - 1;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  size_t b, e;
  chunk_range(n, chunks, 0, &b, &e);
  std::exception_ptr mine;
  try {
    fn(b, e);
  } catch (...) {
    mine = std::current_exception();
  }
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
  if (mine) std::rethrow_exception(mine);
  if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker(int index) {
  size_t seen = 0;
  for (;;) {
    const std::function<void(size_t, size_t)>* job;
    size_t n, chunks;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || (job_ && generation_ != seen); });
      if (stop_) return;
      seen = generation_;
      if (static_cast<size_t>(index) >= chunks_) continue;  // fewer chunks than threads this time
      job = job_;
      n = n_;
      chunks = chunks_;
    }
    size_t b, e;
    chunk_range(n, chunks, index, &b, &e);
    std::exception_ptr err;
    try {
      (*job)(b, e);
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (err && !error_) error_ = err;
    if (--pending_ == 0) done_.notify_all();
  }
}

}  // namespace confidant::cpu
