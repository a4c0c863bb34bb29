// Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy
// as 1, 2, 3" (SC'11), as in Random123's philox.h. Integer-only, so identical on every platform. Not the normals.
#include <array>
#include <cstdint>

#include "confidant/prge.h"

namespace confidant {

namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments (golden ratio, sqrt(3) - 1)

inline void round4x32(std::array<uint32_t, 4>& c, const std::array<uint32_t, 2>& k) {
  const uint64_t p0 = uint64_t(kM0) * c[0], p1 = uint64_t(kM1) * c[2];
  const uint32_t h0 = uint32_t(p0 >> 32), l0 = uint32_t(p0), h1 = uint32_t(p1 >> 32), l1 = uint32_t(p1);
  c = {h1 ^ c[1] ^ k[0], l1, h0 ^ c[3] ^ k[1], l0};
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
  round4x32(counter, key);
  for (int r = 1; r < 10; ++r) {
    key[0] += kW0;
    key[1] += kW1;
    round4x32(counter, key);
  }
  return counter;
}

}  // namespace confidant
