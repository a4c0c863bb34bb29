// Counters reported by STATS: resident memory (VmRSS / VmHWM from /proc/self/status), compute time (in all and per
// backend), command counts and socket bytes. Not the memory budget (memory_budget.h) nor the temperature (thermal.h).
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

// Time the secondary backend (OpenCL) got from split layers, accumulated by layer_forward/layer_backward
// (layer.cpp) for every run, PROFILE included; the session counts only what changes during the commands it times.
struct SecondaryTime {
  uint64_t busy_us = 0;  // each share from its issue until the secondary finished it (overlaps the primary's work)
  uint64_t host_us = 0;  // the part the agent's own thread spent issuing shares or waiting for them to finish
};

class Stats {
 public:
  uint64_t busy_us = 0;            // wall time of FORWARD/BACKWARD/OPTIM_STEP/ZO_FORWARD/ZO_STEP
  uint64_t primary_busy_us = 0;    // of busy_us, the time the agent's thread computed on the primary backend
  uint64_t secondary_busy_us = 0;  // the secondary's shares during those commands (SecondaryTime::busy_us)
  uint64_t forward_count = 0;
  uint64_t backward_count = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

// Adds the lifetime of the scope to the busy counters (FORWARD/BACKWARD/OPTIM_STEP/ZO_FORWARD/ZO_STEP): all of it
// to busy_us, the secondary's time in the scope to secondary_busy_us, and the rest, less what the thread spent on
// the secondary's behalf, to primary_busy_us. Split layers run both backends at once, so primary + secondary may
// exceed busy_us.
class BusyTimer {
 public:
  BusyTimer(Stats& stats, const SecondaryTime& secondary)
      : stats_(stats), secondary_(secondary), secondary_start_(secondary), start_(std::chrono::steady_clock::now()) {}
  ~BusyTimer() {
    const uint64_t busy = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count());
    const uint64_t host = secondary_.host_us - secondary_start_.host_us;
    stats_.busy_us += busy;
    stats_.secondary_busy_us += secondary_.busy_us - secondary_start_.busy_us;
    stats_.primary_busy_us += busy > host ? busy - host : 0;
  }
  BusyTimer(const BusyTimer&) = delete;
  BusyTimer& operator=(const BusyTimer&) = delete;

 private:
  Stats& stats_;
  const SecondaryTime& secondary_;
  const SecondaryTime secondary_start_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace confidant::agent
