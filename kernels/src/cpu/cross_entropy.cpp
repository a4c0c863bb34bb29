// Cross-entropy over the vocabulary on the CPU, threaded over rows. Each row is max-shifted before exp, so large
// logits cannot overflow; the row sum of exponentials is accumulated in fp32 lanes per 256-logit chunk and in
// double across chunks (V is up to ~150k), and the returned total is summed in double in row order, so the result
// does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_ops.h"
#include "parallel.h"
#include "vec8.h"

namespace confidant::cpu {
namespace {

float row_max(const float* l, int V) {
  int v = 0;
  float mx = l[0];
  if (V >= 8) {
    F8 m8 = load8(l);
    for (v = 8; v + 8 <= V; v += 8) m8 = max8(m8, load8(l + v));
    mx = hmax8(m8);
  }
  for (; v < V; ++v) mx = l[v] > mx ? l[v] : mx;
  return mx;
}

// sum_v exp(l[v] - mx)
double row_sum_exp(const float* l, int V, float mx) {
  constexpr int kChunk = 256;
  double total = 0.0;
  int v = 0;
  while (v + 8 <= V) {
    const int end = std::min(V, v + kChunk);
    F8 s = {};
    for (; v + 8 <= end; v += 8) s += exp8(load8(l + v) - mx);
    total += hsum8(s);
  }
  for (; v < V; ++v) total += std::exp(double(l[v]) - mx);
  return total;
}

}  // namespace

double cross_entropy_forward(ThreadPool& pool, float* losses, const float* logits, const int32_t* targets,
                             const float* mask, int N, int V) {
  std::vector<double> row_loss(size_t(std::max(N, 0)), 0.0);
  pool.parallel_for(size_t(N), row_grain(V), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      if (mask[n] == 0.0f) {  // ignored row: its target may be out of range, so do not touch it
        losses[n] = 0.0f;
        continue;
      }
      const float* l = logits + n * V;
      const float mx = row_max(l, V);
      const double lse = double(mx) + std::log(row_sum_exp(l, V, mx));
      row_loss[n] = double(mask[n]) * (lse - double(l[targets[n]]));
      losses[n] = float(row_loss[n]);
    }
  });
  double total = 0.0;
  for (double x : row_loss) total += x;
  return total;
}

void cross_entropy_backward(ThreadPool& pool, float* dlogits, const float* logits, const int32_t* targets,
                            const float* mask, float dloss, int N, int V) {
  pool.parallel_for(size_t(N), row_grain(V), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      if (mask[n] == 0.0f) continue;
      const float* l = logits + n * V;
      float* dl = dlogits + n * V;
      const float mx = row_max(l, V);
      const double w = double(dloss) * mask[n];
      // p = exp(l - mx) / sum: l - mx is exact for nearby logits, unlike l - lse with a large lse.
      const float coef = float(w / row_sum_exp(l, V, mx));
      int v = 0;
      for (; v + 8 <= V; v += 8) store8(dl + v, load8(dl + v) + coef * exp8(load8(l + v) - mx));
      for (; v < V; ++v) dl[v] += coef * std::exp(l[v] - mx);
      dl[targets[n]] -= float(w);
    }
  });
}

}  // namespace confidant::cpu
