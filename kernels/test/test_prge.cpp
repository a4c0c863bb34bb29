// P-RGE z stream: Philox4x32-10 known answers (Random123 kat_vectors), bit-exact z against the independent Python
// implementation (test/fixtures/prge/z-golden.json), accuracy against libm Box–Muller, statistics, stream
// separation, sub-ranges, and prge_axpy_z / prge_update against fill + naive arithmetic.
#include "confidant/prge.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"

// The bit-exact comparisons below redo prge.cpp's float arithmetic, so they must not be fused into fma either.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

using namespace confidant;

namespace {

// ---- a minimal JSON reader for the golden file (objects, arrays, numbers, plain strings) ----
struct Json {
  enum Kind { Null, Num, Str, Arr, Obj } kind = Null;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;
  const Json& operator[](const std::string& k) const {
    auto it = obj.find(k);
    if (it == obj.end()) throw std::runtime_error("golden json: missing key '" + k + "'");
    return it->second;
  }
  uint64_t u64() const { return static_cast<uint64_t>(num); }
};

struct JsonParser {
  const std::string& s;
  size_t i = 0;
  void ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  [[noreturn]] void fail() { throw std::runtime_error("golden json: parse error at byte " + std::to_string(i)); }
  Json value() {
    ws();
    if (i >= s.size()) fail();
    Json v;
    const char c = s[i];
    if (c == '{') {
      v.kind = Json::Obj;
      ++i;
      ws();
      if (s[i] == '}') return ++i, v;
      for (;;) {
        Json k = value();
        ws();
        if (k.kind != Json::Str || s[i++] != ':') fail();
        v.obj[k.str] = value();
        ws();
        if (s[i] == ',') { ++i; continue; }
        if (s[i++] == '}') return v;
        fail();
      }
    }
    if (c == '[') {
      v.kind = Json::Arr;
      ++i;
      ws();
      if (s[i] == ']') return ++i, v;
      for (;;) {
        v.arr.push_back(value());
        ws();
        if (s[i] == ',') { ++i; continue; }
        if (s[i++] == ']') return v;
        fail();
      }
    }
    if (c == '"') {
      v.kind = Json::Str;
      const size_t e = s.find('"', i + 1);
      if (e == std::string::npos) fail();
      v.str = s.substr(i + 1, e - i - 1);
      i = e + 1;
      return v;
    }
    if (s.compare(i, 4, "null") == 0) return i += 4, v;
    char* end = nullptr;
    v.kind = Json::Num;
    v.num = std::strtod(s.c_str() + i, &end);
    if (end == s.c_str() + i) fail();
    i = static_cast<size_t>(end - s.c_str());
    return v;
  }
};

Json load_golden() {
  std::ifstream f(PRGE_GOLDEN);
  if (!f) throw std::runtime_error(std::string("cannot read ") + PRGE_GOLDEN);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  return JsonParser{text}.value();
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::vector<float> fill(size_t n, uint64_t seed, uint32_t step, uint32_t query, uint32_t param_id) {
  std::vector<float> z(n);
  prge_fill_z(z.data(), n, seed, step, query, param_id);
  return z;
}

double correlation(const std::vector<float>& a, const std::vector<float>& b) {
  double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
  const double n = static_cast<double>(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    sa += a[i], sb += b[i], sab += double(a[i]) * b[i], saa += double(a[i]) * a[i], sbb += double(b[i]) * b[i];
  }
  const double cov = sab / n - (sa / n) * (sb / n);
  return cov / std::sqrt((saa / n - (sa / n) * (sa / n)) * (sbb / n - (sb / n) * (sb / n)));
}

void test_philox_kat(const Json& golden) {
  struct Kat {
    std::array<uint32_t, 4> ctr;
    std::array<uint32_t, 2> key;
    std::array<uint32_t, 4> out;
  };
  // Random123 tests/kat_vectors, "philox4x32 10" lines.
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) CHECK(philox4x32_10(k.ctr, k.key) == k.out);
  int n = 0;
  for (const Json& v : golden["philox_kat"].arr) {
    std::array<uint32_t, 4> ctr, out;
    std::array<uint32_t, 2> key;
    for (int i = 0; i < 4; ++i) ctr[i] = uint32_t(v["counter"].arr[i].u64()), out[i] = uint32_t(v["out"].arr[i].u64());
    for (int i = 0; i < 2; ++i) key[i] = uint32_t(v["key"].arr[i].u64());
    CHECK(philox4x32_10(ctr, key) == out);
    ++n;
  }
  CHECK(n == 3);
  std::printf("  philox4x32-10 known answers: %d + %d ok\n", 3, n);
}

void test_golden(const Json& golden) {
  size_t pairs = 0, pair_bad = 0;
  for (const Json& p : golden["normal_pairs"].arr) {
    double z0, z1;
    prge_normal_pair(uint32_t(p["k1"].u64()), uint32_t(p["k2"].u64()), &z0, &z1);
    // Exact doubles (hex), not only floats: an fma or a libm call would change the last bits of the double long
    // before it changed a float.
    const double w0 = std::strtod(p["double"].arr[0].str.c_str(), nullptr);
    const double w1 = std::strtod(p["double"].arr[1].str.c_str(), nullptr);
    const bool ok = z0 == w0 && z1 == w1 && bits(float(z0)) == p["bits"].arr[0].u64() &&
                    bits(float(z1)) == p["bits"].arr[1].u64();
    if (!ok && pair_bad++ < 5) {
      std::fprintf(stderr, "  normal_pair(%llu, %llu) = (%a, %a), golden (%a, %a)\n",
                   (unsigned long long)p["k1"].u64(), (unsigned long long)p["k2"].u64(), z0, z1, w0, w1);
    }
    ++pairs;
  }
  CHECK(pairs > 400 && pair_bad == 0);
  size_t elems = 0, elem_bad = 0, streams = 0;
  for (const Json& s : golden["streams"].arr) {
    const uint64_t seed = std::stoull(s["seed"].str, nullptr, 16);
    const uint32_t step = uint32_t(s["step"].u64()), query = uint32_t(s["query"].u64());
    const uint32_t pid = uint32_t(s["param_id"].u64());
    const uint64_t first = s["first"].u64();
    const size_t n = size_t(s["n"].u64());
    std::vector<float> z(n);
    prge_fill_z_range(z.data(), first, n, seed, step, query, pid);
    std::vector<float> z0;
    if (first == 0) z0 = fill(n, seed, step, query, pid);
    CHECK(s["bits"].arr.size() == n);
    for (size_t i = 0; i < n && i < s["bits"].arr.size(); ++i) {
      const bool ok = bits(z[i]) == s["bits"].arr[i].u64() && (first != 0 || bits(z0[i]) == bits(z[i]));
      if (!ok && elem_bad++ < 5) {
        std::fprintf(stderr, "  stream seed %s step %u query %u param %u element %llu: %.9g, golden %.9g\n",
                     s["seed"].str.c_str(), step, query, pid, (unsigned long long)(first + i), z[i],
                     s["z"].arr[i].num);
      }
      ++elems;
    }
    ++streams;
  }
  CHECK(streams == 10 && elems > 1000 && elem_bad == 0);
  size_t hashed = 0, hashed_elems = 0, hash_bad = 0;
  for (const Json& s : golden["hashed_streams"].arr) {
    const size_t n = size_t(s["n"].u64());
    const std::vector<float> z = fill(n, std::stoull(s["seed"].str, nullptr, 16), uint32_t(s["step"].u64()),
                                      uint32_t(s["query"].u64()), uint32_t(s["param_id"].u64()));
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 over the float bits, little-endian bytes
    for (float f : z) {
      const uint32_t u = bits(f);
      for (int k = 0; k < 4; ++k) h = (h ^ ((u >> (8 * k)) & 0xff)) * 0x100000001b3ull;
    }
    if (h != std::stoull(s["fnv1a64"].str, nullptr, 16)) {
      std::fprintf(stderr, "  hashed stream %zu: fnv1a64 %016llx, golden %s\n", hashed, (unsigned long long)h,
                   s["fnv1a64"].str.c_str());
      ++hash_bad;
    }
    ++hashed, hashed_elems += n;
  }
  CHECK(hashed == 2 && hash_bad == 0);
  std::printf("  golden (Python): %zu normal pairs (exact doubles), %zu stream elements in %zu streams, %zu more "
              "in %zu hashed streams; %zu + %zu + %zu mismatches\n",
              pairs, elems, streams, hashed_elems, hashed, pair_bad, elem_bad, hash_bad);
}

// The libm-free transform is Box–Muller to ~1e-15 (libm's own error on 2 pi u is of the same order).
void test_accuracy() {
  std::mt19937_64 rng(7);
  double worst = 0;
  const uint32_t edges[] = {0, 1, 0x1fffffff, 0x20000000, 0x7fffffff, 0x80000000, 0xb504f333, 0xfffffffe,
                            0xffffffff};
  for (int t = 0; t < 200000; ++t) {
    uint32_t k1 = uint32_t(rng()), k2 = uint32_t(rng());
    if (t < 81) k1 = edges[t % 9], k2 = edges[t / 9];
    double z0, z1;
    prge_normal_pair(k1, k2, &z0, &z1);
    const double u1 = (k1 + 0.5) * 0x1p-32, u2 = (k2 + 0.5) * 0x1p-32;
    const double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * 3.14159265358979323846 * u2;
    worst = std::fmax(worst, std::fmax(std::fabs(z0 - r * std::cos(th)), std::fabs(z1 - r * std::sin(th))));
  }
  std::printf("  vs libm Box-Muller: max abs diff %.3g over 2e5 pairs\n", worst);
  CHECK(worst < 1e-14);
  // The extremes: u1 = 2^-33 gives the largest radius, sqrt(66 ln 2) = 6.7636.
  double z0, z1;
  prge_normal_pair(0, 0x3fffffff, &z0, &z1);  // theta just below pi / 2
  CHECK(std::fabs(std::hypot(z0, z1) - std::sqrt(66 * std::log(2.0))) < 1e-13);
}

void test_statistics() {
  const size_t n = 1000000;
  const std::vector<float> z = fill(n, 0x5eed5eed12345678ull, 3, 1, 17);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0, lane[4] = {0, 0, 0, 0}, lag1 = 0;
  size_t within1 = 0;
  for (size_t i = 0; i < n; ++i) {
    const double x = z[i];
    s1 += x, s2 += x * x, s3 += x * x * x, s4 += x * x * x * x;
    lane[i % 4] += x;
    if (i) lag1 += x * z[i - 1];
    within1 += std::fabs(x) < 1.0;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean, skew = s3 / n, kurt = s4 / n;
  const double frac1 = double(within1) / n;
  std::printf("  1e6 samples: mean %.5f var %.5f skew %.5f kurtosis %.4f P(|z|<1) %.5f lag-1 corr %.5f\n", mean,
              var, skew, kurt, frac1, lag1 / n);
  // Bounds are 5 standard errors: mean 1/sqrt(n), var sqrt(2/n), skew sqrt(15/n), kurtosis sqrt(96/n).
  CHECK(std::fabs(mean) < 5 / std::sqrt(double(n)));
  CHECK(std::fabs(var - 1) < 5 * std::sqrt(2.0 / n));
  CHECK(std::fabs(skew) < 5 * std::sqrt(15.0 / n));
  CHECK(std::fabs(kurt - 3) < 5 * std::sqrt(96.0 / n));
  CHECK(std::fabs(frac1 - 0.682689492) < 5 * std::sqrt(0.2165 / n));
  CHECK(std::fabs(lag1 / n) < 5 / std::sqrt(double(n)));
  for (double l : lane) CHECK(std::fabs(l / (n / 4)) < 5 / std::sqrt(n / 4.0));  // each Box–Muller output
}

void test_separation() {
  const size_t n = 4096;
  const uint64_t seed = 0x0123456789abcdefull;
  const std::vector<float> base = fill(n, seed, 10, 2, 30);
  const struct {
    const char* what;
    std::vector<float> z;
  } others[] = {
      {"step + 1", fill(n, seed, 11, 2, 30)},
      {"query + 1", fill(n, seed, 10, 3, 30)},
      {"param_id + 1", fill(n, seed, 10, 2, 31)},
      {"seed + 1", fill(n, seed + 1, 10, 2, 30)},
      {"seed high word", fill(n, seed ^ (1ull << 40), 10, 2, 30)},
      {"step <-> query", fill(n, seed, 2, 10, 30)},
  };
  for (const auto& o : others) {
    size_t same = 0;
    for (size_t i = 0; i < n; ++i) same += bits(o.z[i]) == bits(base[i]);
    const double rho = correlation(base, o.z);
    std::printf("  %-15s identical %zu / %zu, correlation %+.4f\n", o.what, same, n, rho);
    CHECK(same < 4);
    CHECK(std::fabs(rho) < 5 / std::sqrt(double(n)));
  }
  CHECK(fill(n, seed, 10, 2, 30) == base);  // and the same key gives the same stream
}

void test_ranges() {
  const uint64_t seed = 99;
  const std::vector<float> all = fill(1000, seed, 1, 0, 5);
  size_t bad = 0;
  for (uint64_t first : {0, 1, 2, 3, 4, 5, 7, 255, 256, 257, 600}) {
    for (size_t n : {0, 1, 2, 3, 4, 5, 9, 100, 399}) {
      std::vector<float> z(n);
      prge_fill_z_range(z.data(), first, n, seed, 1, 0, 5);
      for (size_t i = 0; i < n; ++i) bad += bits(z[i]) != bits(all[first + i]);
    }
  }
  CHECK(bad == 0);
  float z[4];
  bool threw = false;
  try {
    prge_fill_z_range(z, (uint64_t(1) << 34) - 2, 3, seed, 1, 0, 5);
  } catch (const std::length_error&) {
    threw = true;
  }
  CHECK(threw);
  prge_fill_z_range(z, (uint64_t(1) << 34) - 2, 2, seed, 1, 0, 5);  // the last two elements exist
}

void test_axpy() {
  for (size_t n : {1, 3, 4, 255, 256, 257, 1000}) {
    const float alpha = n % 2 ? -0.01f : 0.37f;
    ct::Vec x = ct::rand_vec(n, uint32_t(n));
    ct::Vec want = x;
    const std::vector<float> z = fill(n, 42, 5, 1, 9);
    for (size_t i = 0; i < n; ++i) {
      const float d = alpha * z[i];
      want[i] = want[i] + d;
    }
    prge_axpy_z(x.data(), n, alpha, 42, 5, 1, 9);
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += bits(x[i]) != bits(want[i]);
    CHECK(bad == 0);
  }
  // +eps then -eps returns to the start up to rounding (the perturbed copies are symmetric).
  ct::Vec x = ct::rand_vec(300, 3), x0 = x;
  prge_axpy_z(x.data(), x.size(), 1e-2f, 1, 2, 3, 4);
  prge_axpy_z(x.data(), x.size(), -1e-2f, 1, 2, 3, 4);
  ct::expect_close("axpy +eps then -eps", x, x0, 0, 1e-7);
  std::printf("  prge_axpy_z == fill + axpy, bit for bit\n");
}

void test_update() {
  const size_t n = 700;  // crosses the 256-element tiles
  const uint64_t seed = 0xabcdef0123ull;
  for (uint32_t q : {1u, 2u, 5u}) {
    const float lr = 3e-3f;
    std::vector<float> g(q);
    for (uint32_t i = 0; i < q; ++i) g[i] = 0.7f * float(i) - 1.3f;
    ct::Vec x = ct::rand_vec(n, 11 + q);
    std::vector<double> want(x.begin(), x.end());
    std::vector<std::vector<float>> zs;
    for (uint32_t i = 0; i < q; ++i) zs.push_back(fill(n, seed, 8, i, 77));
    for (size_t j = 0; j < n; ++j) {
      double m = 0;
      for (uint32_t i = 0; i < q; ++i) m += double(g[i]) * zs[i][j];
      want[j] -= double(lr) * m / q;
    }
    prge_update(x.data(), n, g.data(), q, lr, seed, 8, 77);
    char name[64];
    std::snprintf(name, sizeof name, "prge_update q=%u vs naive double", q);
    ct::expect_close(name, x, want, 1e-7, 1e-9);  // one float rounding
  }
  bool threw = false;
  try {
    float x = 0, g = 1;
    prge_update(&x, 1, &g, 0, 1e-3f, 1, 1, 1);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

}  // namespace

int main() {
  try {
    const Json golden = load_golden();
    test_philox_kat(golden);
    test_golden(golden);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "golden: %s\n", e.what());
    ++ct::failures;
  }
  test_accuracy();
  test_statistics();
  test_separation();
  test_ranges();
  test_axpy();
  test_update();
  return ct::finish("prge");
}
