// Tiny test support for the reference kernels: a CHECK macro, deterministic random data and a gradient checker.
// Not a framework: each test is a plain executable whose exit code is non-zero when any check failed.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

namespace ct {

inline int failures = 0;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++ct::failures;                                                               \
        }                                                                                 \
    } while (0)

using Vec = std::vector<float>;

// n values uniform in [-scale, scale], reproducible from seed.
inline Vec rand_vec(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-scale, scale);
    Vec v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// Scalar test loss L = sum(out * R), accumulated in double.
inline double dot(const Vec& a, const Vec& b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
    return s;
}

// A gradient buffer prefilled with random values, so tests also prove that backward accumulates (+=).
struct Grad {
    Vec prior, buf;
    Grad(size_t n, uint32_t seed) : prior(rand_vec(n, seed)), buf(prior) {}
    float* data() { return buf.data(); }
    Vec delta() const {
        Vec d(buf.size());
        for (size_t i = 0; i < d.size(); i++) d[i] = buf[i] - prior[i];
        return d;
    }
};

struct Err {
    double max_abs = 0.0, max_rel = 0.0;
    size_t worst = 0;
    bool ok = true;
};

// Element i passes when |got - want| <= atol + rtol * max(|got|, |want|).
inline Err compare(const Vec& got, const std::vector<double>& want, double rtol, double atol) {
    Err e;
    for (size_t i = 0; i < got.size(); i++) {
        double diff = std::fabs(got[i] - want[i]), mag = std::fmax(std::fabs(got[i]), std::fabs(want[i]));
        if (diff > e.max_abs) e.max_abs = diff, e.worst = i;
        if (mag > atol) e.max_rel = std::fmax(e.max_rel, diff / mag);
        if (diff > atol + rtol * mag) e.ok = false;
    }
    return e;
}

inline bool expect_close(const char* name, const Vec& got, const std::vector<double>& want, double rtol,
                         double atol) {
    Err e = compare(got, want, rtol, atol);
    std::printf("  %-34s max abs err %.3g  max rel err %.3g  %s\n", name, e.max_abs, e.max_rel, e.ok ? "ok" : "FAIL");
    if (!e.ok) {
        std::fprintf(stderr, "  %s: worst element %zu got %.8g want %.8g\n", name, e.worst, got[e.worst],
                     want[e.worst]);
        ++failures;
    }
    return e.ok;
}

inline bool expect_close(const char* name, const Vec& got, const Vec& want, double rtol, double atol) {
    return expect_close(name, got, std::vector<double>(want.begin(), want.end()), rtol, atol);
}

// Central differences dL/dx_i = (L(x + e) - L(x - e)) / (x_+ - x_-), where x_+/x_- are the fp32 values actually
// stored (so rounding of x +- eps does not bias the step). x is perturbed in place and restored.
inline std::vector<double> numeric_grad(Vec& x, const std::function<double()>& loss, double eps = 1e-3) {
    std::vector<double> g(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        const float orig = x[i];
        x[i] = (float)(orig + eps);
        const double xp = x[i], lp = loss();
        x[i] = (float)(orig - eps);
        const double xm = x[i], lm = loss();
        x[i] = orig;
        g[i] = (lp - lm) / (xp - xm);
    }
    return g;
}

// Gradient tolerances: fp32 forward outputs + eps 1e-3 give finite-difference noise around 1e-4.
constexpr double kGradRtol = 1e-2, kGradAtol = 1e-3;

// Checks an analytic gradient against central differences of loss() w.r.t. x, then proves the comparison has
// teeth: the same gradient with its largest entry off by 5% (plus a few atol) must be rejected.
inline void expect_grad(const char* name, const Vec& analytic, Vec& x, const std::function<double()>& loss) {
    const std::vector<double> num = numeric_grad(x, loss);
    expect_close(name, analytic, num, kGradRtol, kGradAtol);
    size_t k = 0;
    for (size_t i = 1; i < num.size(); i++)
        if (std::fabs(num[i]) > std::fabs(num[k])) k = i;
    Vec wrong = analytic;
    wrong[k] += (float)(0.05 * std::fabs(num[k]) + 5 * kGradAtol);
    if (compare(wrong, num, kGradRtol, kGradAtol).ok) {
        std::fprintf(stderr, "  %s: gradient checker did not detect a corrupted gradient\n", name);
        ++failures;
    }
}

inline int finish(const char* test) {
    if (failures) {
        std::fprintf(stderr, "%s: %d check(s) FAILED\n", test, failures);
        return 1;
    }
    std::printf("%s: all checks passed\n", test);
    return 0;
}

}  // namespace ct
