// AdamW as in torch.optim.AdamW (decoupled weight decay p *= 1 - lr*wd, bias-corrected moments, eps outside sqrt).
// Not amsgrad, no per-parameter-group logic; grad_scale carries the global-norm clip factor computed by the caller.
#include <cmath>

#include "confidant/ref_ops.h"

namespace confidant::ref {

void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int t, float grad_scale) {
    // param, grad, m, v (n). Bias corrections in double: 1 - beta^t loses digits in fp32 for beta2 near 1.
    const double bc1 = 1.0 - std::pow((double)beta1, t);
    const double bc2 = 1.0 - std::pow((double)beta2, t);
    for (size_t i = 0; i < n; i++) {
        double g = (double)grad[i] * grad_scale;
        double mi = beta1 * (double)m[i] + (1.0 - beta1) * g;
        double vi = beta2 * (double)v[i] + (1.0 - beta2) * g * g;
        m[i] = (float)mi;
        v[i] = (float)vi;
        double p = (double)param[i] * (1.0 - (double)lr * weight_decay);
        p -= lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
        param[i] = (float)p;
    }
}

}  // namespace confidant::ref
