// The base-weight formats of weights.h: sizes, views and the scalar reference quantisers / dequantisers.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "confidant/half.h"
#include "confidant/weights.h"

namespace confidant {

namespace {

constexpr size_t kQ4Block = 2 + kGroup / 2;   // half d + 16 bytes
constexpr size_t kFp4Block = 4 + kGroup / 2;  // half d + half m + 16 bytes

size_t align4(size_t n) { return (n + 3) & ~size_t(3); }

void put_half(uint8_t* p, float f) {
  const uint16_t h = float_to_half(f);
  std::memcpy(p, &h, 2);
}
float get_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// 1 / scale, or 0 when that is not finite: a zero or subnormal scale (a group of zeros, or values below ~1e-38)
// would otherwise make x * (1 / scale) infinite or NaN, and converting that to an int is undefined. With 0 every
// code is the one for 0 (q4_0, int8) or for the group minimum (fp4), which is what the stored scale gives anyway.
float inverse_scale(float scale) {
  const float inv = 1.0f / scale;
  return std::isfinite(inv) ? inv : 0.0f;
}

// llama.cpp's quantize_row_q4_0_ref: the signed value of largest magnitude maps to -8.
void quantize_group_q4_0(uint8_t* blk, const float* x) {
  float amax = 0, max = 0;
  for (int j = 0; j < kGroup; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = inverse_scale(d);
  put_half(blk, d);
  for (int j = 0; j < kGroup / 2; ++j) {
    const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
    const int q1 = std::min(15, static_cast<int>(x[j + kGroup / 2] * id + 8.5f));
    blk[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

// Asymmetric: 16 levels from the group minimum to its maximum. The stored (half) d and m are the ones used to
// pick the codes, so rounding of the scale itself does not bias the codes.
void quantize_group_fp4(uint8_t* blk, const float* x) {
  float lo = x[0], hi = x[0];
  for (int j = 1; j < kGroup; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  const float d = half_to_float(float_to_half((hi - lo) / 15.0f));
  const float m = half_to_float(float_to_half(lo));
  const float id = inverse_scale(d);
  put_half(blk, d);
  put_half(blk + 2, m);
  for (int j = 0; j < kGroup / 2; ++j) {
    const int q0 = std::clamp(static_cast<int>(std::lround((x[j] - m) * id)), 0, 15);
    const int q1 = std::clamp(static_cast<int>(std::lround((x[j + kGroup / 2] - m) * id)), 0, 15);
    blk[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

}  // namespace

const char* wdtype_name(WDType t) {
  switch (t) {
    case WDType::F32: return "f32";
    case WDType::F16: return "f16";
    case WDType::I8: return "int8";
    case WDType::Q4_0: return "q4_0";
    case WDType::FP4: return "fp4";
  }
  return "?";
}

bool wdtype_from_name(const char* name, WDType* out) {
  for (int i = 0; i < kNumWDTypes; ++i) {
    if (std::strcmp(name, wdtype_name(static_cast<WDType>(i))) == 0) {
      *out = static_cast<WDType>(i);
      return true;
    }
  }
  return false;
}

bool wdtype_is_grouped(WDType t) { return t == WDType::Q4_0 || t == WDType::FP4; }

size_t wdtype_row_bytes(WDType t, int cols) {
  switch (t) {
    case WDType::F32: return size_t(cols) * 4;
    case WDType::F16: return size_t(cols) * 2;
    case WDType::I8: return size_t(cols);
    case WDType::Q4_0: return size_t(cols / kGroup) * kQ4Block;
    case WDType::FP4: return size_t(cols / kGroup) * kFp4Block;
  }
  return 0;
}

size_t wdtype_matrix_bytes(WDType t, int rows, int cols) {
  if (wdtype_is_grouped(t) && cols % kGroup != 0) return 0;
  const size_t body = wdtype_row_bytes(t, cols) * size_t(rows);
  return t == WDType::I8 ? align4(body) + size_t(rows) * 4 : body;
}

WeightView WeightView::packed(WDType t, const void* bytes, int rows, int cols) {
  WeightView v;
  v.dtype = t;
  v.data = bytes;
  v.rows = rows;
  v.cols = cols;
  v.row_stride_bytes = wdtype_row_bytes(t, cols);
  if (t == WDType::I8) {
    v.row_scales = reinterpret_cast<const float*>(static_cast<const uint8_t*>(bytes) + align4(size_t(rows) * cols));
  }
  return v;
}

WeightView WeightView::slice_rows(int row0, int n) const {
  if (row0 < 0 || n < 0 || row0 + n > rows) throw std::out_of_range("WeightView::slice_rows out of range");
  WeightView v = *this;
  v.data = static_cast<const uint8_t*>(data) + size_t(row0) * row_stride_bytes;
  if (row_scales) v.row_scales = row_scales + row0;
  v.rows = n;
  return v;
}

WeightView WeightView::slice_cols(int col0, int n) const {
  if (col0 < 0 || n < 0 || col0 + n > cols) throw std::out_of_range("WeightView::slice_cols out of range");
  if (wdtype_is_grouped(dtype) && (col0 % kGroup != 0 || n % kGroup != 0)) {
    throw std::invalid_argument("WeightView::slice_cols: grouped formats slice at multiples of 32 columns");
  }
  WeightView v = *this;
  v.data = static_cast<const uint8_t*>(data) + wdtype_row_bytes(dtype, col0);
  v.cols = n;
  return v;
}

void quantize_matrix(WDType t, void* out, const float* w, int rows, int cols) {
  if (wdtype_is_grouped(t) && cols % kGroup != 0) {
    throw std::invalid_argument(std::string(wdtype_name(t)) + " needs a column count that is a multiple of 32");
  }
  uint8_t* o = static_cast<uint8_t*>(out);
  const size_t n = size_t(rows) * cols;
  switch (t) {
    case WDType::F32:
      std::memcpy(o, w, n * 4);
      return;
    case WDType::F16:
      for (size_t i = 0; i < n; ++i) put_half(o + 2 * i, w[i]);
      return;
    case WDType::I8: {
      std::memset(o, 0, wdtype_matrix_bytes(t, rows, cols));
      float* scales = reinterpret_cast<float*>(o + align4(n));
      for (int r = 0; r < rows; ++r) {
        const float* x = w + size_t(r) * cols;
        float amax = 0;
        for (int c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(x[c]));
        const float s = amax / 127.0f, is = inverse_scale(s);
        std::memcpy(&scales[r], &s, 4);
        for (int c = 0; c < cols; ++c) {
          o[size_t(r) * cols + c] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[c] * is)));
        }
      }
      return;
    }
    case WDType::Q4_0:
    case WDType::FP4: {
      const size_t blk = t == WDType::Q4_0 ? kQ4Block : kFp4Block;
      for (size_t g = 0; g < n / kGroup; ++g) {
        if (t == WDType::Q4_0) quantize_group_q4_0(o + g * blk, w + g * kGroup);
        else quantize_group_fp4(o + g * blk, w + g * kGroup);
      }
      return;
    }
  }
}

void dequantize_row(const WeightView& w, int r, float* out) {
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + size_t(r) * w.row_stride_bytes;
  switch (w.dtype) {
    case WDType::F32:
      std::memcpy(out, row, size_t(w.cols) * 4);
      return;
    case WDType::F16:
      for (int c = 0; c < w.cols; ++c) out[c] = get_half(row + 2 * c);
      return;
    case WDType::I8: {
      const float s = w.row_scales[r];
      for (int c = 0; c < w.cols; ++c) out[c] = static_cast<float>(static_cast<int8_t>(row[c])) * s;
      return;
    }
    case WDType::Q4_0:
      for (int g = 0; g < w.cols / kGroup; ++g) {
        const uint8_t* b = row + size_t(g) * kQ4Block;
        const float d = get_half(b);
        for (int j = 0; j < kGroup / 2; ++j) {
          out[g * kGroup + j] = static_cast<float>((b[2 + j] & 0x0F) - 8) * d;
          out[g * kGroup + j + kGroup / 2] = static_cast<float>((b[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case WDType::FP4:
      for (int g = 0; g < w.cols / kGroup; ++g) {
        const uint8_t* b = row + size_t(g) * kFp4Block;
        const float d = get_half(b), m = get_half(b + 2);
        for (int j = 0; j < kGroup / 2; ++j) {
          // The Transformer-Lite trick, written out: half(0x6400 | q) - 1024 == q exactly.
          const float lo = half_to_float(static_cast<uint16_t>(0x6400 | (b[4 + j] & 0x0F))) - 1024.0f;
          const float hi = half_to_float(static_cast<uint16_t>(0x6400 | (b[4 + j] >> 4))) - 1024.0f;
          out[g * kGroup + j] = lo * d + m;
          out[g * kGroup + j + kGroup / 2] = hi * d + m;
        }
      }
      return;
  }
}

}  // namespace confidant
