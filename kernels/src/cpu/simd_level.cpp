#include "simd_level.h"

#include <cstdlib>
#include <cstring>
#if defined(CONFIDANT_CPU_X86)
#include <cpuid.h>
#endif

namespace confidant::cpu {

#if defined(CONFIDANT_CPU_X86)
namespace {
// F16C from CPUID leaf 1 (ECX bit 29): __builtin_cpu_supports("f16c") is GCC-only (clang, the NDK's compiler,
// rejects the name).
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
}  // namespace
#endif

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::Neon: return "neon";
    case SimdLevel::Avx2: return "avx2";
    case SimdLevel::Avx512: return "avx512";
  }
  return "?";
}

bool simd_level_available(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar: return true;
    case SimdLevel::Neon:
#if defined(CONFIDANT_CPU_NEON)
      return true;  // Advanced SIMD is part of the arm64 base architecture
#else
      return false;
#endif
    case SimdLevel::Avx2:
#if defined(CONFIDANT_CPU_X86)
      // libgcc's check also asks the OS (XGETBV) whether it saves the wide registers.
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#else
      return false;
#endif
    case SimdLevel::Avx512:
#if defined(CONFIDANT_CPU_X86)
      return __builtin_cpu_supports("avx512f") && simd_level_available(SimdLevel::Avx2);
#else
      return false;
#endif
  }
  return false;
}

SimdLevel simd_level_choose() {
  const SimdLevel all[] = {SimdLevel::Scalar, SimdLevel::Neon, SimdLevel::Avx2, SimdLevel::Avx512};
  if (const char* env = std::getenv("CONFIDANT_SIMD")) {
    for (SimdLevel l : all) {
      if (std::strcmp(env, simd_level_name(l)) == 0 && simd_level_available(l)) return l;
    }
  }
  SimdLevel best = SimdLevel::Scalar;
  for (SimdLevel l : all) {
    if (simd_level_available(l)) best = l;
  }
  return best;
}

}  // namespace confidant::cpu
