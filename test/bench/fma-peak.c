// FMA peak of this CPU, for npm run bench when the kernels' own kernels_bench_matmul is not built: every thread
// runs a register-only loop of independent fused multiply-adds on the widest vectors -march=native gives.
// Usage: fma-peak THREADS. Prints one JSON line {"peak_gflops": ..., "threads": ..., "vector_bytes": ...}.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define VBYTES 64
#define ACCS 16 // 32 zmm registers: 16 accumulators + operands, enough to hide 4-cycle latency on 2 ports
#elif defined(__AVX__)
#define VBYTES 32
#define ACCS 10 // 16 ymm registers
#else
#define VBYTES 16
#define ACCS 12 // NEON (32 q registers) or SSE
#endif
#define LANES (VBYTES / 4)

typedef float vf __attribute__((vector_size(VBYTES)));

static const long kIters = 20000000;
static volatile float sink;

static void* worker(void* arg) {
  (void)arg;
  vf acc[ACCS];
  vf m, a;
  for (int l = 0; l < LANES; l++) {
    m[l] = 0.999999f;
    a[l] = 1e-7f;
  }
  for (int i = 0; i < ACCS; i++) acc[i] = a * (float)(i + 1);
  for (long it = 0; it < kIters; it++) {
    // -ffp-contract=fast turns each into one FMA; the accumulators are independent chains. The inner loop has a
    // constant trip count, so -O3 unrolls it and keeps acc[] in registers.
#pragma GCC unroll 16
    for (int i = 0; i < ACCS; i++) acc[i] = acc[i] * m + a;
  }
  float s = 0;
  for (int i = 0; i < ACCS; i++)
    for (int l = 0; l < LANES; l++) s += acc[i][l];
  sink = s;
  return NULL;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 256) threads = 1;
  pthread_t tid[256];
  double best = 1e30;
  for (int rep = 0; rep < 4; rep++) { // rep 0 warms up (frequency ramp); the best of the rest is kept
    const double t0 = now_s();
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, worker, NULL);
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    const double s = now_s() - t0;
    if (rep > 0 && s < best) best = s;
  }
  const double flops = 2.0 * LANES * ACCS * (double)kIters * threads;
  printf("{\"peak_gflops\":%.3f,\"threads\":%d,\"vector_bytes\":%d}\n", flops / best / 1e9, threads, VBYTES);
  return 0;
}
