// Token embedding lookup (gather) and its backward (scatter-add into the table).
// Not bounds-checked: token ids are assumed to be in [0, V); the caller validates data.
#include "confidant/ref_ops.h"

namespace confidant::ref {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
    // out (N,C), tokens (N), wte (V,C)
    for (int n = 0; n < N; n++) {
        const float* row = wte + (size_t)tokens[n] * C;
        float* o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = row[c];
    }
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
    // dwte (V,C) +=, dout (N,C). A token repeated in the batch receives the sum of its rows' gradients.
    for (int n = 0; n < N; n++) {
        float* d = dwte + (size_t)tokens[n] * C;
        const float* g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

}  // namespace confidant::ref
