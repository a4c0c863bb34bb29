// Addressing inside a packed weight row (layouts in weights.h), shared by the per-level dequantisers.
// Unnamed namespace on purpose: every matmul_<level>.cpp gets its own copy compiled with its own -m flags, so the
// linker can never substitute an AVX-512 build of these for the scalar one.
#pragma once
#include <cstddef>
#include <cstdint>

#include "confidant/weights.h"

namespace confidant::cpu {
namespace {

constexpr int kQ4BlockBytes = 2 + kGroup / 2;   // half d, 16 bytes of nibbles
constexpr int kFp4BlockBytes = 4 + kGroup / 2;  // half d, half m, 16 bytes of nibbles

// Byte address of element (row, col0); col0 a multiple of kGroup for the grouped formats.
inline const uint8_t* packed_at(const WeightView& W, int row, int col0) {
  const uint8_t* p = static_cast<const uint8_t*>(W.data) + size_t(row) * W.row_stride_bytes;
  switch (W.dtype) {
    case WDType::F32: return p + size_t(col0) * 4;
    case WDType::F16: return p + size_t(col0) * 2;
    case WDType::I8: return p + size_t(col0);
    case WDType::Q4_0: return p + size_t(col0 / kGroup) * kQ4BlockBytes;
    case WDType::FP4: return p + size_t(col0 / kGroup) * kFp4BlockBytes;
  }
  return p;
}

}  // namespace
}  // namespace confidant::cpu
