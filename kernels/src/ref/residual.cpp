// Residual connection out = a + b over flat buffers of n elements; in-place (out == a or out == b) is allowed.
// Not a norm or a scaled residual: the gradient passes through unchanged to both branches.
#include "confidant/ref_ops.h"

namespace confidant::ref {

void residual_forward(float* out, const float* a, const float* b, size_t n) {
    // out, a, b (n)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t n) {
    // da, db (n) +=, dout (n)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

}  // namespace confidant::ref
