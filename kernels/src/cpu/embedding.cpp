// Token embedding gather/scatter on the CPU. Forward dequantises only the looked-up rows (any weight format);
// backward splits the table by columns across threads, so repeated tokens accumulate without races or atomics
// and in the same order as the reference.
#include <algorithm>
#include <cstring>

#include "cpu_ops.h"
#include "parallel.h"

namespace confidant::cpu {

void embedding_forward(ThreadPool& pool, float* out, const int32_t* tokens, const WeightView& wte, int N, int C) {
  pool.parallel_for(size_t(N), row_grain(C), [&](size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; ++n) {
      float* o = out + n * C;
      if (wte.dtype == WDType::F32) {
        const char* row = static_cast<const char*>(wte.data) + size_t(tokens[n]) * wte.row_stride_bytes;
        std::memcpy(o, row, size_t(C) * sizeof(float));
      } else {
        dequantize_row(wte, tokens[n], o);
      }
    }
  });
}

void embedding_backward(ThreadPool& pool, float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  const size_t grain = std::max<size_t>(64, kMinElemsPerThread / size_t(std::max(1, N)));
  pool.parallel_for(size_t(C), grain, [&](size_t c0, size_t c1) {
    for (int n = 0; n < N; ++n) {
      float* d = dwte + size_t(tokens[n]) * C;
      const float* g = dout + size_t(n) * C;
      for (size_t c = c0; c < c1; ++c) d[c] += g[c];
    }
  });
}

}  // namespace confidant::cpu
