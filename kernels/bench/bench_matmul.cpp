// Times the CPU backend's matmuls per weight format against a measured FMA peak of the chosen SIMD level.
// Not a test: numbers depend on the machine and its load. Usage:
//   kernels_bench_matmul [--n 512] [--c 2048] [--oc 5632] [--reps 3] [--threads 0] [--rank 16]
// Prints one line per format and a JSON summary as the last line.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <utility>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "confidant/backend.h"
#include "confidant/weights.h"
#include "matmul_kernels.h"
#include "simd_level.h"
#include "thread_pool.h"

using namespace confidant;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of all threads of this process. On a machine shared with other busy processes, wall time measures the
// share the scheduler gave us; flops per CPU-second x threads is what the code does with the cores it gets
// (it ignores time a thread sits idle waiting for the others, so it reads slightly high).
double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Timing {
  double wall_s = 1e30, cpu_s = 1e30;  // best of the repetitions, each
};

template <class Fn>
Timing best_of(int reps, const Fn& fn) {
  fn();  // warm-up: page faults, scratch growth, thread wake-up
  Timing best;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    const double c0 = process_cpu_seconds();
    fn();
    best.cpu_s = std::min(best.cpu_s, process_cpu_seconds() - c0);
    best.wall_s = std::min(best.wall_s, seconds_since(t0));
  }
  return best;
}

// Every thread runs the register-only FMA loop at once. Returns {wall, cpu} GFLOP/s (see process_cpu_seconds).
std::pair<double, double> fma_peak_gflops(const cpu::MatmulKernels& kr, int threads) {
  cpu::ThreadPool pool(threads);
  const long iters = 20'000'000;
  double flops_per_thread = 0;
  const Timing t = best_of(5, [&] {
    pool.parallel_for(threads, 1, [&](size_t, size_t) { flops_per_thread = kr.fma_loop(iters); });
  });
  const double flops = flops_per_thread * threads;
  return {flops / t.wall_s / 1e9, flops / t.cpu_s * threads / 1e9};
}

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int N = 512, C = 2048, OC = 5632, reps = 3, threads = 0, R = 16;
  std::string only;  // --formats f32,q4_0 limits the formats
  bool forward_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--forward-only")) {
      forward_only = true;
      continue;
    }
    if (i + 1 >= argc) break;
    const char* a = argv[i + 1];
    if (!std::strcmp(argv[i], "--n")) N = std::atoi(a);
    else if (!std::strcmp(argv[i], "--c")) C = std::atoi(a);
    else if (!std::strcmp(argv[i], "--oc")) OC = std::atoi(a);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(a);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(a);
    else if (!std::strcmp(argv[i], "--rank")) R = std::atoi(a);
    else if (!std::strcmp(argv[i], "--formats")) only = a;
    ++i;
  }
  auto be = make_cpu_backend(threads);
  const BackendInfo info = be->info();
  const int T = info.threads;
  const cpu::MatmulKernels& kr = cpu::matmul_kernels(cpu::simd_level_choose());
  const auto [peak_wall, peak_cpu] = fma_peak_gflops(kr, T);
  std::printf("backend %s (%s), N=%d C=%d OC=%d\nFMA peak (%s, %d threads): %.1f GFLOP/s wall, %.1f GFLOP/s per "
              "CPU time x threads\n",
              info.name.c_str(), info.device.c_str(), N, C, OC, cpu::simd_level_name(kr.level), T, peak_wall,
              peak_cpu);

  const std::vector<float> w = random_vec(size_t(OC) * C, 1), x = random_vec(size_t(N) * C, 2),
                           dout = random_vec(size_t(N) * OC, 3), A = random_vec(size_t(R) * C, 4),
                           B = random_vec(size_t(OC) * R, 5);
  std::vector<float> out(size_t(N) * OC), dx(size_t(N) * C), xa(size_t(N) * R), out1(OC);
  const double flops = 2.0 * N * C * OC, lora_flops = flops + 2.0 * N * R * (C + OC);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"device\":\"%s\",\"simd\":\"%s\",\"threads\":%d,\"N\":%d,\"C\":%d,\"OC\":%d,\"rank\":%d,"
                "\"peak_gflops_wall\":%.2f,\"peak_gflops_cpu\":%.2f,\"formats\":{",
                info.device.c_str(), cpu::simd_level_name(kr.level), T, N, C, OC, R, peak_wall, peak_cpu);
  std::string json = buf;
  bool first = true;
  for (int t = 0; t < kNumWDTypes; ++t) {
    const WDType dt = static_cast<WDType>(t);
    if (!only.empty() && ("," + only + ",").find(std::string(",") + wdtype_name(dt) + ",") == std::string::npos) {
      continue;
    }
    std::vector<uint8_t> packed(wdtype_matrix_bytes(dt, OC, C));
    quantize_matrix(dt, packed.data(), w.data(), OC, C);
    const WeightView W = WeightView::packed(dt, packed.data(), OC, C);
    // GFLOP/s by wall time and by CPU time (x threads); fraction of the matching peak.
    auto rates = [&](const Timing& tm, double f) { return std::make_pair(f / tm.wall_s / 1e9, f / tm.cpu_s * T / 1e9); };
    const auto fwd = rates(best_of(reps, [&] { be->linear_forward(out.data(), x.data(), W, nullptr, N, C, OC); }), flops);
    std::pair<double, double> bwd{0, 0}, lora{0, 0};
    double dec_ms = 0;
    if (!forward_only) {
      bwd = rates(best_of(reps, [&] { be->linear_backward_input(dx.data(), dout.data(), W, N, C, OC); }), flops);
      lora = rates(best_of(reps, [&] {
                     be->linear_lora_forward(out.data(), xa.data(), x.data(), W, nullptr, A.data(), B.data(), N, C, R,
                                             OC, 2.0f);
                   }),
                   lora_flops);
      // Decode: one row, bound by reading the packed weights once.
      dec_ms = 1e3 * best_of(reps * 3, [&] { be->linear_forward(out1.data(), x.data(), W, nullptr, 1, C, OC); }).wall_s;
    }
    std::printf("  %-5s forward %6.1f GFLOP/s wall (%4.1f%% of peak), %6.1f by CPU time (%4.1f%%)", wdtype_name(dt),
                fwd.first, 100 * fwd.first / peak_wall, fwd.second, 100 * fwd.second / peak_cpu);
    if (!forward_only) {
      std::printf(" | backward_input %6.1f / %6.1f | fused lora r%d %6.1f / %6.1f | decode N=1 %.2f ms (%.1f GB/s)",
                  bwd.first, bwd.second, R, lora.first, lora.second, dec_ms, packed.size() / dec_ms / 1e6);
    }
    std::printf("\n");
    std::snprintf(buf, sizeof buf,
                  "%s\"%s\":{\"forward_gflops_wall\":%.2f,\"forward_gflops_cpu\":%.2f,\"forward_frac_of_peak_cpu\":%.3f,"
                  "\"backward_input_gflops_wall\":%.2f,\"backward_input_gflops_cpu\":%.2f,"
                  "\"lora_forward_gflops_wall\":%.2f,\"lora_forward_gflops_cpu\":%.2f,\"decode_ms\":%.3f}",
                  first ? "" : ",", wdtype_name(dt), fwd.first, fwd.second, fwd.second / peak_cpu, bwd.first,
                  bwd.second, lora.first, lora.second, dec_ms);
    json += buf;
    first = false;
  }
  json += "}}";
  std::printf("%s\n", json.c_str());
  return 0;
}
