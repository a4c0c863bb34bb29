// LoraSet::zo_update against a naive P-RGE update built from prge_fill_z, on a small two-layer stage; then a
// zeroth-order descent on a quadratic with the perturbed copies drawn by prge_axpy_z, which only converges when the
// update regenerates the very z the "forward" used. Not the stage model's batched forward (stage_model.h).
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "confidant/prge.h"
#include "lora.h"

using namespace confidant;
using namespace confidant::agent;

namespace {

StageConfig small_stage() {
  StageConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 6;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 32;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.layer_start = 2;  // a middle stage: parameter ids start at 2 * 7
  c.layer_end = 4;
  return c;
}

void randomize(LoraSet& set, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  for (const LoraAdapter& ca : set.adapters()) {
    LoraAdapter& a = *set.find(ca.layer, ca.module);
    for (float& x : a.A) x = d(rng);
    for (float& x : a.B) x = d(rng);
  }
}

// B - lr * mean_i(g_i z_i) in double, z_i from prge_fill_z with the documented parameter id.
std::vector<std::vector<double>> naive_update(const LoraSet& set, uint64_t seed, uint32_t step,
                                              const std::vector<float>& g, float lr) {
  std::vector<std::vector<double>> out;
  for (const LoraAdapter& a : set.adapters()) {
    const uint32_t pid = a.layer * kNumLoraModules + static_cast<uint32_t>(a.module);
    std::vector<double> b(a.B.begin(), a.B.end()), mean(a.B.size(), 0.0);
    std::vector<float> z(a.B.size());
    for (size_t i = 0; i < g.size(); ++i) {
      prge_fill_z(z.data(), z.size(), seed, step, static_cast<uint32_t>(i), pid);
      for (size_t j = 0; j < z.size(); ++j) mean[j] += double(g[i]) * z[j] / double(g.size());
    }
    for (size_t j = 0; j < b.size(); ++j) b[j] -= double(lr) * mean[j];
    out.push_back(std::move(b));
  }
  return out;
}

void test_against_naive(uint32_t mask, const std::vector<float>& g) {
  LoraSet set(small_stage(), 2, 4.0f, mask, false);
  CHECK(!set.empty());
  randomize(set, 17 + uint32_t(g.size()));
  const std::vector<LoraAdapter> before = set.adapters();
  const uint64_t seed = 0x1234abcd5678ef01ull;
  const uint32_t step = 41;
  const float lr = 2e-3f;
  const auto want = naive_update(set, seed, step, g, lr);
  set.zo_update(seed, step, g, lr);

  double worst = 0, moved = 0;
  for (size_t k = 0; k < set.adapters().size(); ++k) {
    const LoraAdapter& a = set.adapters()[k];
    CHECK(a.A == before[k].A);  // LoRA-FA: A never moves
    CHECK(a.dB == before[k].dB && a.mB == before[k].mB && a.vB == before[k].vB);
    for (size_t j = 0; j < a.B.size(); ++j) {
      const double err = std::fabs(a.B[j] - want[k][j]), tol = 1e-7 * std::fabs(want[k][j]) + 1e-12;
      worst = std::fmax(worst, err);
      CHECK_MSG(err <= tol, "adapter " + std::to_string(k) + " element " + std::to_string(j));
      moved = std::fmax(moved, std::fabs(want[k][j] - before[k].B[j]));
    }
  }
  std::printf("  mask 0x%02x q=%zu: %zu adapters, max |B - naive| %.3g (update size up to %.3g)\n", mask, g.size(),
              set.adapters().size(), worst, moved);
  CHECK(moved > 1e-4);  // the comparison has teeth: the update is far above the tolerance
}

// Two adapters must not share a direction: their parameter ids differ.
void test_distinct_directions() {
  LoraSet set(small_stage(), 2, 4.0f, (1u << kQ) | (1u << kO), false);  // q and o: both B are (16, 2)
  const std::vector<LoraAdapter> before = set.adapters();                // all zeros
  set.zo_update(5, 0, {1.0f}, 1.0f);
  const auto& ad = set.adapters();
  CHECK(ad.size() == 4);
  for (size_t k = 0; k < ad.size(); ++k) {
    std::vector<float> z(ad[k].B.size());
    prge_fill_z(z.data(), z.size(), 5, 0, 0, LoraSet::zo_param_id(ad[k].layer, ad[k].module));
    for (size_t j = 0; j < z.size(); ++j) CHECK(ad[k].B[j] == -z[j]);  // lr 1, g 1, q 1: B = 0 - z exactly
    for (size_t l = k + 1; l < ad.size(); ++l) CHECK(ad[k].B != ad[l].B);
  }
  CHECK(LoraSet::zo_param_id(3, kV) == 3 * 7 + 2);
}

void test_rejects() {
  LoraSet set(small_stage(), 2, 4.0f, 0x7f, false);
  randomize(set, 3);
  const std::vector<LoraAdapter> before = set.adapters();
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS(LoraError, set.zo_update(1, 1, {}, 1e-3f), "q >= 1");
  CHECK_THROWS(LoraError, set.zo_update(1, 1, {0.5f, nan}, 1e-3f), "g[1]");
  CHECK_THROWS(LoraError, set.zo_update(1, 1, {-inf}, 1e-3f), "g[0]");
  CHECK_THROWS(LoraError, set.zo_update(1, 1, {0.5f}, nan), "learning rate");
  CHECK_THROWS(LoraError, set.zo_update(1, 1, {0.5f}, inf), "learning rate");
  bool same = true;
  for (size_t k = 0; k < before.size(); ++k) same = same && set.adapters()[k].B == before[k].B;
  CHECK_MSG(same, "a rejected update changed B");
  LoraSet none;
  none.zo_update(1, 1, {1.0f}, 1e-3f);  // no adapters: nothing to do, not an error
  CHECK(none.empty());
}

// P-RGE on L(B) = 0.5 |B - T|^2 over every B of the stage: perturbed copies B +- eps z_i by prge_axpy_z (as the
// stage forward draws them), g_i on the "host", then zo_update. The loss falls only if both sides use the same z.
void test_descent() {
  LoraSet set(small_stage(), 2, 4.0f, (1u << kQ) | (1u << kV), false);
  std::vector<std::vector<float>> target;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const LoraAdapter& a : set.adapters()) {
    std::vector<float> t(a.B.size());
    for (float& x : t) x = nd(rng);
    target.push_back(t);
  }
  auto loss_of = [&](const std::vector<std::vector<float>>& bs) {
    double l = 0;
    for (size_t k = 0; k < bs.size(); ++k)
      for (size_t j = 0; j < bs[k].size(); ++j) {
        const double d = double(bs[k][j]) - target[k][j];
        l += 0.5 * d * d;
      }
    return l;
  };
  auto current = [&] {
    std::vector<std::vector<float>> bs;
    for (const LoraAdapter& a : set.adapters()) bs.push_back(a.B);
    return bs;
  };
  const uint64_t seed = 777;
  const uint32_t q = 4;
  const float eps = 1e-2f, lr = 0.02f;
  const double l0 = loss_of(current());
  for (uint32_t step = 0; step < 300; ++step) {
    std::vector<float> g(q);
    for (uint32_t i = 0; i < q; ++i) {
      auto plus = current(), minus = current();
      for (size_t k = 0; k < plus.size(); ++k) {
        const LoraAdapter& a = set.adapters()[k];
        const uint32_t pid = LoraSet::zo_param_id(a.layer, a.module);
        prge_axpy_z(plus[k].data(), plus[k].size(), eps, seed, step, i, pid);
        prge_axpy_z(minus[k].data(), minus[k].size(), -eps, seed, step, i, pid);
      }
      g[i] = static_cast<float>((loss_of(plus) - loss_of(minus)) / (2.0 * eps));
    }
    set.zo_update(seed, step, g, lr);
  }
  const double l1 = loss_of(current());
  size_t nb = 0;
  for (const LoraAdapter& a : set.adapters()) nb += a.B.size();
  std::printf("  ZO descent on a quadratic (%zu B parameters, q=%u, 300 steps): loss %.4g -> %.4g\n", nb, q, l0, l1);
  CHECK(l1 < 0.05 * l0);
}

}  // namespace

int main() {
  test_against_naive(0x7f, {0.8f});
  test_against_naive(0x7f, {0.8f, -1.7f, 0.05f, 2.5f});
  test_against_naive((1u << kQ) | (1u << kDown), {-3.0f, 1.0f});
  test_distinct_directions();
  test_rejects();
  test_descent();
  return agent_test::finish("prge_update");
}
