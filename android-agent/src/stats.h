// Counters reported by STATS: resident memory (VmRSS / VmHWM from /proc/self/status), compute time, command counts
// and socket bytes. Not the memory budget (memory_budget.h).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace confidant::agent {

struct MemoryUsage {
  uint64_t rss_bytes = 0;
  uint64_t peak_rss_bytes = 0;
};

// Parses the text of /proc/<pid>/status (values in kB); fields that are absent stay 0. Pure, for tests.
MemoryUsage parse_proc_status(const std::string& text);
// Reads /proc/self/status; where it is unavailable, peak falls back to getrusage and rss to 0.
MemoryUsage read_memory_usage();

class Stats {
 public:
  uint64_t busy_us = 0;
  uint64_t forward_count = 0;
  uint64_t backward_count = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// Adds the lifetime of the scope to a busy-time counter (FORWARD/BACKWARD/OPTIM_STEP).
class BusyTimer {
 public:
  explicit BusyTimer(uint64_t* busy_us) : busy_us_(busy_us), start_(std::chrono::steady_clock::now()) {}
  ~BusyTimer() {
    *busy_us_ += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count());
  }
  BusyTimer(const BusyTimer&) = delete;
  BusyTimer& operator=(const BusyTimer&) = delete;

 private:
  uint64_t* busy_us_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace confidant::agent
