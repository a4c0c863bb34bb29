// The base-weight formats (weights.h): quantise -> dequantise error of each format within its stated bound,
// wdtype_matrix_bytes / wdtype_row_bytes, slice_rows / slice_cols views equal to slices of the dequantised matrix,
// and Q4_0's bytes equal to llama.cpp's block_q4_0 on a hand-computed group (FP4's header placement too).
// Not testing the fast kernels' dequantisers (test_backend_ops.cpp runs them against dequantize_row).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "confidant/half.h"
#include "confidant/weights.h"

using namespace confidant;
using ct::Vec;

namespace {

constexpr double kHalfUlp = 1.0 / 2048;  // relative rounding error of a half (2^-11)

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// Test data: uniform in [-1, 1], a few outliers, and a constant row (zero range for FP4, one level for I8).
Vec weights(int rows, int cols, uint32_t seed) {
  Vec w = ct::rand_vec(size_t(rows) * cols, seed);
  for (size_t i = 7; i < w.size(); i += 97) w[i] *= 9.0f;
  for (int c = 0; c < cols; ++c) w[size_t(rows - 1) * cols + c] = 0.25f;
  return w;
}

void check_error_bounds(WDType t, int rows, int cols) {
  const Vec w = weights(rows, cols, 7 + cols);
  std::vector<uint8_t> packed(wdtype_matrix_bytes(t, rows, cols));
  quantize_matrix(t, packed.data(), w.data(), rows, cols);
  const WeightView v = WeightView::packed(t, packed.data(), rows, cols);
  Vec deq(size_t(rows) * cols);
  for (int r = 0; r < rows; ++r) dequantize_row(v, r, deq.data() + size_t(r) * cols);

  double worst_ratio = 0;  // max over elements of |error| / bound
  int clamped = 0;
  bool ok = true;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const size_t i = size_t(r) * cols + c;
      const double x = w[i], err = std::fabs(double(deq[i]) - x);
      double bound = 0;
      switch (t) {
        case WDType::F32: bound = 0; break;
        case WDType::F16: bound = std::fabs(x) * kHalfUlp; break;
        case WDType::I8: bound = v.row_scales[r] / 2 * (1 + 1e-6); break;  // scale / 2 per element
        case WDType::Q4_0: {
          // d / 2, plus the half rounding of d times |q - 8| <= 8. llama.cpp maps the largest magnitude to -8, so
          // levels run from -8d to 7d: elements of the other sign beyond 7|d| are clamped, error up to |d|.
          const double ds = half_at(packed.data() + (i / kGroup) * 18), d = std::fabs(ds);
          const bool clamp = ds != 0 && x / ds > 7.5;  // levels are (q - 8) * d for q in 0..15
          clamped += clamp;
          bound = (clamp ? d : d / 2) + 8 * d * kHalfUlp + 1e-7;
          break;
        }
        case WDType::FP4: {
          // d / 2, plus half rounding of d (15 levels) and of m.
          const uint8_t* blk = packed.data() + (i / kGroup) * 20;
          const double d = half_at(blk), m = half_at(blk + 2);
          bound = d / 2 + 15 * d * kHalfUlp + std::fabs(m) * kHalfUlp + 1e-7;
          break;
        }
      }
      if (err > bound) {
        if (ok) std::fprintf(stderr, "  %s: element (%d,%d) = %.7g dequantised %.7g, error %.3g > bound %.3g\n",
                             wdtype_name(t), r, c, x, deq[i], err, bound);
        ok = false;
      }
      if (bound > 0) worst_ratio = std::fmax(worst_ratio, err / bound);
    }
  std::printf("  %-5s %dx%-4d quantise->dequantise error within bound: worst error/bound %.3f%s  %s\n", wdtype_name(t),
              rows, cols, worst_ratio, t == WDType::Q4_0 ? (" (" + std::to_string(clamped) + " clamped)").c_str() : "",
              ok ? "ok" : "FAIL");
  CHECK(ok);
}

void check_sizes() {
  CHECK(wdtype_matrix_bytes(WDType::F32, 3, 5) == 60);
  CHECK(wdtype_matrix_bytes(WDType::F16, 3, 5) == 30);
  CHECK(wdtype_matrix_bytes(WDType::I8, 3, 5) == 16 + 12);  // 15 codes padded to 16, then 3 float scales
  CHECK(wdtype_matrix_bytes(WDType::I8, 4, 8) == 32 + 16);
  CHECK(wdtype_matrix_bytes(WDType::Q4_0, 3, 64) == 3 * 2 * 18);
  CHECK(wdtype_matrix_bytes(WDType::FP4, 3, 64) == 3 * 2 * 20);
  CHECK(wdtype_matrix_bytes(WDType::Q4_0, 3, 48) == 0);  // not a multiple of 32
  CHECK(wdtype_matrix_bytes(WDType::FP4, 3, 200) == 0);
  CHECK(wdtype_row_bytes(WDType::F16, 7) == 14);
  CHECK(wdtype_row_bytes(WDType::I8, 7) == 7);
  CHECK(wdtype_row_bytes(WDType::Q4_0, 96) == 54);
  CHECK(wdtype_row_bytes(WDType::FP4, 96) == 60);
  // A 4-bit format costs 4.5 (Q4_0) / 5 (FP4) bits per weight.
  CHECK(wdtype_matrix_bytes(WDType::Q4_0, 4096, 4096) * 8 == size_t(4096) * 4096 * 9 / 2);
  std::vector<uint8_t> buf(wdtype_matrix_bytes(WDType::I8, 3, 5));
  const WeightView v = WeightView::packed(WDType::I8, buf.data(), 3, 5);
  CHECK(reinterpret_cast<const uint8_t*>(v.row_scales) == buf.data() + 16);
  for (int t = 0; t < kNumWDTypes; ++t) {
    WDType back;
    CHECK(wdtype_from_name(wdtype_name(static_cast<WDType>(t)), &back) && back == static_cast<WDType>(t));
  }
  std::printf("  sizes and names ok\n");
}

// Views of a sub-block read exactly the corresponding part of the whole matrix.
void check_slices(WDType t) {
  const int rows = 7, cols = 160;
  const Vec w = weights(rows, cols, 3);
  std::vector<uint8_t> packed(wdtype_matrix_bytes(t, rows, cols));
  quantize_matrix(t, packed.data(), w.data(), rows, cols);
  const WeightView full = WeightView::packed(t, packed.data(), rows, cols);
  Vec deq(size_t(rows) * cols);
  for (int r = 0; r < rows; ++r) dequantize_row(full, r, deq.data() + size_t(r) * cols);

  struct Slice {
    int row0, nrows, col0, ncols;
  };
  std::vector<Slice> slices = {{2, 3, 32, 64}, {0, 7, 128, 32}, {6, 1, 0, 160}};
  if (!wdtype_is_grouped(t)) slices.push_back({1, 5, 5, 17});
  bool ok = true;
  for (const Slice& s : slices) {
    const WeightView v = full.slice_rows(s.row0, s.nrows).slice_cols(s.col0, s.ncols);
    const WeightView v2 = full.slice_cols(s.col0, s.ncols).slice_rows(s.row0, s.nrows);  // either order
    Vec row(s.ncols), row2(s.ncols);
    for (int r = 0; r < s.nrows; ++r) {
      dequantize_row(v, r, row.data());
      dequantize_row(v2, r, row2.data());
      ok &= std::memcmp(row.data(), &deq[size_t(s.row0 + r) * cols + s.col0], s.ncols * sizeof(float)) == 0;
      ok &= row == row2;
    }
  }
  bool threw = false;
  try {
    full.slice_cols(16, 32);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  if (wdtype_is_grouped(t)) ok &= threw;
  try {
    full.slice_rows(5, 3);
    ok = false;
  } catch (const std::out_of_range&) {
  }
  std::printf("  %-5s slice_rows / slice_cols views equal the slices of the dequantised matrix  %s\n", wdtype_name(t),
              ok ? "ok" : "FAIL");
  CHECK(ok);
}

// x[j] = (j - 16) / 2: largest magnitude is x[0] = -8, so d = -8 / -8 = 1 (half 0x3C00) and
// q[j] = min(15, int(x[j] + 8.5)) = min(15, (j + 1) / 2). Byte 2 + j = q[j] | q[j + 16] << 4, as llama.cpp's
// quantize_row_q4_0_ref writes block_q4_0 { ggml_half d; uint8_t qs[16]; } (18 bytes).
void check_q4_0_layout() {
  Vec x(kGroup);
  for (int j = 0; j < kGroup; ++j) x[j] = (j - 16) * 0.5f;
  uint8_t blk[18];
  quantize_matrix(WDType::Q4_0, blk, x.data(), 1, kGroup);
  const uint8_t want[18] = {0x00, 0x3C, 0x80, 0x91, 0x91, 0xA2, 0xA2, 0xB3, 0xB3, 0xC4,
                            0xC4, 0xD5, 0xD5, 0xE6, 0xE6, 0xF7, 0xF7, 0xF8};
  const bool ok = std::memcmp(blk, want, 18) == 0;
  std::printf("  q4_0  block bytes equal llama.cpp block_q4_0 on the hand-computed group  %s\n", ok ? "ok" : "FAIL");
  if (!ok) {
    for (int i = 0; i < 18; ++i) std::fprintf(stderr, "%02X%s", blk[i], i == 17 ? "\n" : " ");
  }
  CHECK(ok);
  Vec back(kGroup);
  dequantize_row(WeightView::packed(WDType::Q4_0, blk, 1, kGroup), 0, back.data());
  CHECK(back[0] == -8.0f && back[1] == -7.0f && back[2] == -7.0f && back[31] == 7.0f);  // x[31] = 7.5 clamps to 7

  // FP4: min -1 and max 2 give d = half(3 / 15) and m = half(-1) = 0xBC00 right after it.
  Vec y(kGroup, 0.5f);
  y[3] = -1.0f;
  y[20] = 2.0f;
  uint8_t f[20];
  quantize_matrix(WDType::FP4, f, y.data(), 1, kGroup);
  CHECK(half_at(f) == half_to_float(float_to_half(0.2f)));
  CHECK(f[2] == 0x00 && f[3] == 0xBC);
  CHECK((f[4 + 3] & 0x0F) == 0 && (f[4 + 4] >> 4) == 15);  // element 3 low nibble, element 20 = 4 + 16 high nibble
}

}  // namespace

int main() {
  for (int t = 0; t < kNumWDTypes; ++t) {
    const WDType dt = static_cast<WDType>(t);
    check_error_bounds(dt, 9, 96);
    check_error_bounds(dt, 4, 1024);
    if (!wdtype_is_grouped(dt)) check_error_bounds(dt, 5, 200);
  }
  check_sizes();
  for (int t = 0; t < kNumWDTypes; ++t) check_slices(static_cast<WDType>(t));
  check_q4_0_layout();
  return ct::finish("formats");
}
