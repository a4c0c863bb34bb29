// How many threads the CPU backend uses by default: one per "big" core. On big.LITTLE phones the little cores are
// 2-4x slower, and a data-parallel op split evenly across all cores finishes when the slowest thread does, so
// using them makes a step slower, not faster.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "confidant/backend.h"
#include "cpu_threads.h"

#if defined(__linux__) || defined(__ANDROID__)
#include <sched.h>
#endif
#include <unistd.h>

namespace confidant {

namespace {

// cpuinfo_max_freq of cpu i in kHz, or -1 when not readable (offline core, no cpufreq, sandbox).
long max_freq_khz(int cpu) {
  char path[96];
  std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/cpufreq/cpuinfo_max_freq", cpu);
  FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  long khz = -1;
  if (std::fscanf(f, "%ld", &khz) != 1) khz = -1;
  std::fclose(f);
  return khz;
}

}  // namespace

namespace cpu {

// Not only the single fastest cluster: on tri-cluster SoCs (1 prime + 3-5 performance + 2-4 efficiency cores) the
// prime "cluster" is one core and the performance cores run at 80-95% of its clock, while the efficiency cores sit
// at 55-70% of it. Taking the prime core alone would leave most of the phone idle.
int count_big_cores(const std::vector<long>& max_freq_khz) {
  long top = 0;
  for (long f : max_freq_khz) top = f > top ? f : top;
  int big = 0;
  for (long f : max_freq_khz) big += top > 0 && f * 4 > top * 3;
  return big;
}

}  // namespace cpu

int cpu_default_threads() {
  if (const char* env = std::getenv("CONFIDANT_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = 1;
  int threads = int(online);

  const long configured = sysconf(_SC_NPROCESSORS_CONF);
  std::vector<long> freqs;
  for (int core = 0; core < configured && core < 1024; ++core) {
    const long f = max_freq_khz(core);
    if (f > 0) freqs.push_back(f);
  }
  const int big = cpu::count_big_cores(freqs);
  if (big > 0 && big < threads) threads = big;

#if defined(__linux__) || defined(__ANDROID__)
  // A process pinned to fewer cores (taskset, container quota on cores) cannot use more.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int allowed = CPU_COUNT(&set);
    if (allowed > 0 && allowed < threads) threads = allowed;
  }
#endif
  return threads > 0 ? threads : 1;
}

}  // namespace confidant
