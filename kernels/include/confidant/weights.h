// Base-weight storage formats: quantised once on the host, read-only (mapped) on the device, and consumed directly
// by the matmul kernels (no dequantised copy of a whole matrix is ever made).
//
// A weight matrix W has the Hugging Face layout (rows = out features, cols = in features) and is stored row by row.
// Quantised formats work in groups of kGroup consecutive elements of one row, so cols % kGroup == 0 for them.
//
// Layouts (little-endian):
//  F32   rows*cols float.
//  F16   rows*cols IEEE half.
//  I8    rows*cols int8 codes, then rows float scales (at byte offset rows*cols rounded up to 4): w = q * scale[row].
//        Symmetric per row, scale = max|w| / 127.
//  Q4_0  per group: { half d; uint8 qs[16] } (18 bytes, llama.cpp's block_q4_0): byte j holds element j in its low
//        nibble and element j+16 in its high nibble; w = (q - 8) * d. Symmetric, d = max-magnitude / -8 as llama.cpp.
//  FP4   per group: { half d; half m; uint8 qs[16] } (20 bytes), same nibble order; w = q * d + m (asymmetric,
//        m = group min, d = (max - min) / 15). Transformer-Lite's cheap dequantisation: the half with bits
//        0x6400 | q is exactly 1024 + q, so two bit operations (and, or) give a half from which one fused
//        multiply-add (h - 1024) * d + m gives w, with no int-to-float conversion.
#pragma once
#include <cstddef>
#include <cstdint>

namespace confidant {

enum class WDType : uint8_t { F32 = 0, F16 = 1, I8 = 2, Q4_0 = 3, FP4 = 4 };
constexpr int kGroup = 32;  // elements per quantisation group (Q4_0, FP4)
constexpr int kNumWDTypes = 5;

const char* wdtype_name(WDType t);  // "f32", "f16", "int8", "q4_0", "fp4"
bool wdtype_from_name(const char* name, WDType* out);
bool wdtype_is_grouped(WDType t);  // Q4_0, FP4
// Bytes of one full row of cols elements (I8: codes only; its scales are a separate plane).
size_t wdtype_row_bytes(WDType t, int cols);
// Total bytes of a rows x cols matrix in this format (I8: codes, padding, scales). 0 if cols is not a multiple of
// kGroup for a grouped format.
size_t wdtype_matrix_bytes(WDType t, int rows, int cols);

// A read-only view of a weight matrix, or of a sub-block of one (row slice, or a column slice starting at a
// multiple of kGroup for grouped formats), without copying.
struct WeightView {
  WDType dtype = WDType::F32;
  const void* data = nullptr;         // element (0,0) of the view
  const float* row_scales = nullptr;  // I8 only: scale of row 0 of the view
  int rows = 0, cols = 0;
  size_t row_stride_bytes = 0;        // distance between consecutive rows

  // Views a whole packed matrix of the layout above starting at bytes.
  static WeightView packed(WDType t, const void* bytes, int rows, int cols);
  static WeightView f32(const float* w, int rows, int cols) { return packed(WDType::F32, w, rows, cols); }
  WeightView slice_rows(int row0, int n) const;
  WeightView slice_cols(int col0, int n) const;  // col0 and n multiples of kGroup for grouped formats
};

// Reference (scalar) quantisation and dequantisation, the numerical spec for the host packer and every kernel.
// quantize writes wdtype_matrix_bytes(t, rows, cols) bytes.
void quantize_matrix(WDType t, void* out, const float* w, int rows, int cols);
// Dequantises row r of the view into out (view.cols floats).
void dequantize_row(const WeightView& w, int r, float* out);

}  // namespace confidant
