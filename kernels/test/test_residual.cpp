// Residual: forward and in-place forward vs a + b; da and db vs finite differences (both accumulate).
// Not much else to test: the op is elementwise.
#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const size_t n = 37;
    ct::Vec a = ct::rand_vec(n, 1), b = ct::rand_vec(n, 2), R = ct::rand_vec(n, 3), out(n);

    residual_forward(out.data(), a.data(), b.data(), n);
    bool exact = true;
    for (size_t i = 0; i < n; i++) exact &= out[i] == a[i] + b[i];
    CHECK(exact);
    ct::Vec inplace = a;
    residual_forward(inplace.data(), inplace.data(), b.data(), n);
    CHECK(inplace == out);

    ct::Grad da(n, 4), db(n, 5);
    residual_backward(da.data(), db.data(), R.data(), n);
    auto loss = [&] {
        residual_forward(out.data(), a.data(), b.data(), n);
        return ct::dot(out, R);
    };
    ct::expect_grad("residual da", da.delta(), a, loss);
    ct::expect_grad("residual db", db.delta(), b, loss);
    return ct::finish("residual");
}
