// Attention speed: the CPU flash-style kernels (src/cpu/attention.cpp) vs the reference (ref::attention_*, which
// materialises the (B,NH,T,T) probabilities and accumulates in double) at a Llama-like shape.
// Usage: kernels_bench_attention [T] [threads...]   (default T=512, threads 1 and 2; B=1, NH=32, NKV=4, HD=64)
// Not a test: prints times only (best of several runs for the CPU kernels, one run for the slow reference), as
// wall-clock and as process CPU time: on a shared machine the CPU time of one thread is the stable number, and
// wall < CPU time shows the threads overlapping.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <vector>

#include "../src/cpu/cpu_ops.h"
#include "confidant/ref_ops.h"

namespace {

struct Time {
  double wall = 1e30, cpu = 1e30;  // seconds, best of the runs
};

double cpu_seconds() { return double(std::clock()) / CLOCKS_PER_SEC; }

Time seconds(const std::function<void()>& fn, int reps) {
  Time best;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    fn();
    best.cpu = std::min(best.cpu, cpu_seconds() - c0);
    best.wall = std::min(best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

std::vector<float> rand_vec(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const int B = 1, NH = 32, NKV = 4, HD = 64;
  const int T = argc > 1 ? std::atoi(argv[1]) : 512;
  std::vector<int> thread_counts;
  for (int i = 2; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
  if (thread_counts.empty()) thread_counts = {1, 2};
  const size_t nq = size_t(B) * T * NH * HD, nkv = size_t(B) * T * NKV * HD;
  const auto q = rand_vec(nq, 1), k = rand_vec(nkv, 2), v = rand_vec(nkv, 3), dout = rand_vec(nq, 4);
  std::vector<float> out(nq), lse(size_t(B) * NH * T), dq(nq), dk(nkv), dv(nkv);
  // Causal forward FLOPs: two (T x T/2 x HD) products per head; backward has five.
  const double fwd_flop = 2.0 * 2.0 * B * NH * (double(T) * (T + 1) / 2) * HD, bwd_flop = fwd_flop * 5 / 2;
  std::printf("attention B=%d T=%d NH=%d NKV=%d HD=%d\n", B, T, NH, NKV, HD);

  std::vector<float> ref_out(nq), att(size_t(B) * NH * T * T);
  const Time ref_f = seconds([&] {
    confidant::ref::attention_forward(ref_out.data(), att.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
  }, 1);
  const Time ref_b = seconds([&] {
    confidant::ref::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), att.data(), q.data(), k.data(),
                                       v.data(), B, T, NH, NKV, HD);
  }, 1);
  std::printf("  %-24s forward wall %8.2f ms cpu %8.2f ms | backward wall %8.2f ms cpu %8.2f ms\n", "reference",
              ref_f.wall * 1e3, ref_f.cpu * 1e3, ref_b.wall * 1e3, ref_b.cpu * 1e3);

  for (const auto level : {confidant::cpu::SimdLevel::Avx2, confidant::cpu::SimdLevel::Neon,
                           confidant::cpu::SimdLevel::Scalar}) {
    if (!confidant::cpu::simd_level_available(level)) continue;
    for (int threads : thread_counts) {
      confidant::cpu::ThreadPool pool(threads);
      const Time f = seconds([&] {
        confidant::cpu::attention_forward(pool, level, out.data(), lse.data(), q.data(), k.data(), v.data(), B, T, NH,
                                          NKV, HD);
      }, 5);
      const Time b = seconds([&] {
        confidant::cpu::attention_backward(pool, level, dq.data(), dk.data(), dv.data(), dout.data(), out.data(),
                                           lse.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, HD);
      }, 5);
      char label[48];
      std::snprintf(label, sizeof label, "cpu %s, %d thread(s)", confidant::cpu::simd_level_name(level), threads);
      std::printf("  %-24s forward wall %8.2f ms cpu %8.2f ms | backward wall %8.2f ms cpu %8.2f ms\n", label,
                  f.wall * 1e3, f.cpu * 1e3, b.wall * 1e3, b.cpu * 1e3);
      std::printf("  %-24s speed-up vs reference (wall): forward %.1fx backward %.1fx; %.1f / %.1f GFLOP/s per CPU-s\n",
                  "", ref_f.wall / f.wall, ref_b.wall / b.wall, fwd_flop / f.cpu * 1e-9, bwd_flop / b.cpu * 1e-9);
    }
  }
  return 0;
}
