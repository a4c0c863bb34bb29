// AdamW: three steps vs a scalar re-derivation of torch.optim.AdamW in double, with weight decay and grad_scale.
// Not a gradient check (the optimizer has no backward); a zero-lr step must leave the parameter untouched.
#include <cmath>

#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const size_t n = 16;
    const float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.1f, grad_scale = 0.5f;
    ct::Vec param = ct::rand_vec(n, 1), m(n, 0.0f), v(n, 0.0f);
    std::vector<double> p_ref(param.begin(), param.end()), m_ref(n, 0.0), v_ref(n, 0.0);

    for (int t = 1; t <= 3; t++) {
        const ct::Vec grad = ct::rand_vec(n, 10 + t, 2.0f);
        adamw_step(param.data(), grad.data(), m.data(), v.data(), n, lr, beta1, beta2, eps, wd, t, grad_scale);
        for (size_t i = 0; i < n; i++) {
            double g = grad[i] * (double)grad_scale;
            m_ref[i] = beta1 * m_ref[i] + (1 - beta1) * g;
            v_ref[i] = beta2 * v_ref[i] + (1 - beta2) * g * g;
            double m_hat = m_ref[i] / (1 - std::pow(beta1, t)), v_hat = v_ref[i] / (1 - std::pow(beta2, t));
            p_ref[i] = p_ref[i] - lr * wd * p_ref[i] - lr * m_hat / (std::sqrt(v_hat) + eps);
        }
    }
    ct::expect_close("adamw param after 3 steps", param, p_ref, 1e-6, 1e-7);
    ct::expect_close("adamw m after 3 steps", m, m_ref, 1e-5, 1e-8);
    ct::expect_close("adamw v after 3 steps", v, v_ref, 1e-5, 1e-10);

    const ct::Vec before = param, grad = ct::rand_vec(n, 20);
    adamw_step(param.data(), grad.data(), m.data(), v.data(), n, 0.0f, beta1, beta2, eps, wd, 4, grad_scale);
    CHECK(param == before);
    return ct::finish("adamw");
}
