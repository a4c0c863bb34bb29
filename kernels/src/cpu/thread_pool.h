// A fixed pool of worker threads for the CPU backend's data-parallel loops. One parallel_for at a time (the agent
// runs one op at a time per backend); the calling thread takes a share of the work, so threads == 1 means no
// worker threads at all.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace confidant::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }
  // Splits [0, n) into chunks of at least grain items, one chunk per thread at most, and runs fn(begin, end) on
  // each; returns when all are done. Rethrows the first exception a chunk threw.
  void parallel_for(size_t n, size_t grain, const std::function<void(size_t begin, size_t end)>& fn);

 private:
  void worker(int index);

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(size_t, size_t)>* job_ = nullptr;
  size_t n_ = 0, chunks_ = 0;
  size_t generation_ = 0;  // bumped per job, so a worker never runs one job twice
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace confidant::cpu
