// Which SIMD instruction set the CPU matmuls use, chosen at run time: one binary runs on any x86_64 (AVX2/AVX-512
// only where the CPU has them) and on every arm64 phone (NEON is mandatory there).
#pragma once

namespace confidant::cpu {

// Ordered from least to most capable within an architecture.
enum class SimdLevel { Scalar, Neon, Avx2, Avx512 };

const char* simd_level_name(SimdLevel level);  // "scalar", "neon", "avx2", "avx512"
// Compiled into this binary and executable on this CPU.
bool simd_level_available(SimdLevel level);
// The best available level, unless CONFIDANT_SIMD names an available one (scalar|neon|avx2|avx512): tests use that
// to exercise every path the machine can run, and it is a switch for ruling out a miscompiled SIMD path in the field.
SimdLevel simd_level_choose();

}  // namespace confidant::cpu
