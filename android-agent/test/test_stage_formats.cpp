// Quantised stage files (dtypes int8, q4_0, fp4 of docs/stage-format.md) packed by the independent pack_stage.py:
// every quantised tensor has exactly the bytes of the kernels' reference quantize_matrix applied to the f32 original
// (from the f32 whole.stage), its view() dequantises to within the format's error bound, fallbacks (q4_0 / fp4 on
// 172 columns -> f16) and norms are where the spec puts them, and sizes or dtypes that contradict the spec are
// refused with errors naming the tensor. Also runs pack_stage.py --quantize on random and edge-case matrices and
// compares with quantize_matrix byte for byte (test/unit/quantize.test.ts compares the host's quantize.ts with the
// same Python, so host == Python == C++).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "check.h"
#include "confidant/weights.h"
#include "stage_file.h"

using namespace confidant::agent;
using confidant::WDType;
using confidant::WeightView;

namespace {

const std::string kData = AGENT_TEST_DATA;

std::string write_variant(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = kData + "/stage_formats_test_" + name + ".stage";
  CHECK(agent_test::write_file(path, bytes));
  return path;
}

void put_u64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Byte offset of tensor `name`'s dtype field in the table (the nbytes field is at +2 + 8 * ndim + 8).
size_t entry_dtype_offset(const std::vector<uint8_t>& b, const std::string& name, size_t* nbytes_off) {
  const uint32_t count = b[12] | (b[13] << 8) | (b[14] << 16) | (static_cast<uint32_t>(b[15]) << 24);
  size_t p = 96;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t len = b[p] | (b[p + 1] << 8);
    const std::string n(reinterpret_cast<const char*>(&b[p + 2]), len);
    p += 2 + len;
    const size_t ndim = b[p + 1];
    if (n == name) {
      if (nbytes_off) *nbytes_off = p + 2 + 8 * ndim + 8;
      return p;
    }
    p += 2 + 8 * ndim + 20;
  }
  return 0;
}

// Worst-case |w - dequantised w| for one unit (int8: a row; q4_0, fp4: a group of 32; f16: one value): half a step,
// q4_0's clamp of +8 to +7 (one step), the rounding of the half scale(s), float rounding, half subnormal steps.
// The same bound as quantErrorBound in electron/core/model/quantize.ts.
double error_bound(WDType t, const float* x, int n) {
  double amax = 0, lo = x[0], hi = x[0];
  for (int i = 0; i < n; ++i) {
    amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
    lo = std::min(lo, static_cast<double>(x[i]));
    hi = std::max(hi, static_cast<double>(x[i]));
  }
  const double u = std::ldexp(1.0, -10), tiny = std::ldexp(1.0, -24);
  switch (t) {
    case WDType::F32: return 0;
    case WDType::F16: return amax * std::ldexp(1.0, -11) + std::ldexp(1.0, -25);
    case WDType::I8: return amax / 127 * (0.5 + 1e-4) + amax * std::ldexp(1.0, -22);
    case WDType::Q4_0: return amax / 8 * (1 + 8 * u) + 8 * tiny;
    case WDType::FP4:
      return (hi - lo) / 15 * (0.5 + 16 * u) + std::fabs(lo) * u + amax * std::ldexp(1.0, -22) + 16 * tiny;
  }
  return 0;
}

struct ErrorStats {
  double sq_err = 0, sq_ref = 0, max_abs = 0;
  double rel_rms() const { return sq_ref > 0 ? std::sqrt(sq_err / sq_ref) : 0; }
};

// Dequantises every row of `v` and checks it against the f32 original, unit by unit.
void check_dequantised(const std::string& who, const WeightView& v, const float* orig, ErrorStats& st) {
  std::vector<float> row(static_cast<size_t>(v.cols));
  const int unit = v.dtype == WDType::I8 ? v.cols : confidant::wdtype_is_grouped(v.dtype) ? confidant::kGroup : 1;
  int bad = 0;
  for (int r = 0; r < v.rows; ++r) {
    confidant::dequantize_row(v, r, row.data());
    const float* o = orig + static_cast<size_t>(r) * v.cols;
    for (int c0 = 0; c0 < v.cols; c0 += unit) {
      const double bound = error_bound(v.dtype, o + c0, unit);
      for (int c = c0; c < c0 + unit; ++c) {
        const double err = std::fabs(static_cast<double>(o[c]) - row[c]);
        st.sq_err += err * err;
        st.sq_ref += static_cast<double>(o[c]) * o[c];
        st.max_abs = std::max(st.max_abs, err);
        if (!(err <= bound) && bad++ < 3) {
          agent_test::fail(__FILE__, __LINE__,
                           who + " [" + std::to_string(r) + ", " + std::to_string(c) + "]: |" + std::to_string(o[c]) +
                               " - " + std::to_string(row[c]) + "| exceeds the bound " + std::to_string(bound));
        }
      }
    }
  }
}

// Checks a stage packed as `fmt` by pack_stage.py against the f32 stage `ref`.
void check_quantised_stage(const StageFile& ref, WDType fmt) {
  const std::string name = confidant::wdtype_name(fmt);
  const std::string path = kData + "/whole_" + name + ".stage";
  std::unique_ptr<StageFile> f;
  try {
    f = StageFile::open(path);
  } catch (const StageFileError& e) {
    agent_test::fail(__FILE__, __LINE__, std::string("cannot open a quantised stage: ") + e.what());
    return;
  }
  CHECK_EQ(f->tensors().size(), ref.tensors().size());
  int quantised = 0, fallbacks = 0;
  ErrorStats all;
  for (const StageTensor& t : f->tensors()) {
    const StageTensor* o = ref.find(t.name);
    CHECK_MSG(o && o->dtype == WDType::F32 && o->dims == t.dims, t.name + ": f32 original with the same shape");
    if (!o || o->dtype != WDType::F32 || o->dims != t.dims) continue;
    const float* w = reinterpret_cast<const float*>(o->data);
    const std::string who = name + " " + t.name;
    if (t.dims.size() == 1) {
      CHECK_MSG(t.dtype == WDType::F32 && std::memcmp(t.data, o->data, t.nbytes) == 0, who + ": 1-D stays f32");
      CHECK_THROWS(StageFileError, t.view(), "only a 2-D weight matrix has a WeightView");
      continue;
    }
    const int rows = static_cast<int>(t.dims[0]), cols = static_cast<int>(t.dims[1]);
    const WeightView v = t.view();
    CHECK_MSG(v.dtype == t.dtype && v.rows == rows && v.cols == cols && v.data == t.data, who + ": view shape");
    if (t.dtype == fmt) {
      ++quantised;
      CHECK(t.quantized());
      CHECK_EQ(t.nbytes, confidant::wdtype_matrix_bytes(fmt, rows, cols));
      // The Python quantiser is bit-identical to the reference.
      std::vector<uint8_t> expect(confidant::wdtype_matrix_bytes(fmt, rows, cols));
      confidant::quantize_matrix(fmt, expect.data(), w, rows, cols);
      CHECK_MSG(expect.size() == t.nbytes && std::memcmp(expect.data(), t.data, expect.size()) == 0,
                who + ": bytes differ from confidant::quantize_matrix");
      ErrorStats st;
      check_dequantised(who, v, w, st);
      all.sq_err += st.sq_err;
      all.sq_ref += st.sq_ref;
      all.max_abs = std::max(all.max_abs, st.max_abs);
      // A row / column slice views the same weights.
      if (rows > 3 && cols >= 2 * confidant::kGroup) {
        const WeightView s = v.slice_rows(2, 2).slice_cols(confidant::kGroup, confidant::kGroup);
        std::vector<float> full(static_cast<size_t>(cols)), part(confidant::kGroup);
        confidant::dequantize_row(v, 3, full.data());
        confidant::dequantize_row(s, 1, part.data());
        CHECK_MSG(std::memcmp(part.data(), full.data() + confidant::kGroup, sizeof(float) * confidant::kGroup) == 0,
                  who + ": sliced view");
      }
    } else {
      // Only a grouped format's matrices with cols % 32 != 0 fall back, to f16.
      ++fallbacks;
      CHECK_MSG(confidant::wdtype_is_grouped(fmt) && cols % confidant::kGroup != 0 && t.dtype == WDType::F16,
                who + " is stored as " + confidant::wdtype_name(t.dtype));
      ErrorStats st;
      check_dequantised(who + " (f16 fallback)", v, w, st);
    }
  }
  // stories260K: 35 layer matrices + the (tied) embedding; the 5 down_proj [64, 172] cannot be grouped.
  CHECK_EQ(quantised, fmt == WDType::I8 ? 36 : 31);
  CHECK_EQ(fallbacks, fmt == WDType::I8 ? 0 : 5);
  std::printf("%s: %d matrices, relative RMS error %.4g, max abs error %.4g\n", name.c_str(), quantised,
              all.rel_rms(), all.max_abs);
}

// Random and edge-case matrices: pack_stage.py --quantize gives exactly the bytes of quantize_matrix.
void check_python_quantiser() {
  struct M {
    std::string name;
    int rows, cols;
    std::vector<float> w;
  };
  std::vector<M> ms;
  std::mt19937 gen(1234);
  std::normal_distribution<float> n02(0.0f, 0.02f);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  M a{"normal", 24, 128, {}};
  for (int i = 0; i < a.rows * a.cols; ++i) a.w.push_back(n02(gen));
  M b{"uniform", 7, 64, {}};
  for (int i = 0; i < b.rows * b.cols; ++i) b.w.push_back(u(gen));
  M e{"edges", 4, 128, {}};
  for (int g = 0; g < 16; ++g) {
    for (int j = 0; j < 32; ++j) {
      float x = 0;
      switch (g) {
        case 0: x = 0; break;
        case 1: x = j % 2 ? -0.0f : 0.0f; break;
        case 2: x = 0.3f; break;
        case 3: x = j == 0 ? -8.0f : static_cast<float>(j % 17) - 8.0f + 0.5f; break;  // q4_0 d = 1: ties
        case 4: x = j == 0 ? 0.0f : j == 1 ? 15.0f : static_cast<float>(j % 15) + 0.5f; break;  // fp4 d = 1
        case 5: x = j == 0 ? 127.0f : static_cast<float>(j % 64) - 32.0f + 0.5f; break;   // int8 s = 1
        case 6: x = static_cast<float>(j - 16) * 3e-6f; break;  // half-subnormal scales
        case 7: x = (j % 2 ? 1.0f : -1.0f) * (60000.0f + 500.0f * static_cast<float>(j)); break;  // half overflow
        case 8: x = j == 5 ? 1.5f : j == 6 ? -1.5f : 0.01f * static_cast<float>(j); break;  // magnitude tie
        case 9: x = j == 31 ? 1e-3f : 1e-7f * static_cast<float>(j); break;
#if defined(__x86_64__) || defined(_M_X64)
        // Float subnormals: the reciprocal of the scale overflows and the casts take x86-64's values (which the
        // host quantisers reproduce); other hosts may give other (equally meaningless) codes.
        case 10: x = static_cast<float>(j - 16) * 1e-40f; break;
#endif
        default: x = n02(gen) * static_cast<float>(g); break;
      }
      e.w.push_back(x);
    }
  }
  ms.push_back(a);
  ms.push_back(b);
  ms.push_back(e);
  M odd{"odd", 3, 5, {}};
  for (int i = 0; i < 15; ++i) odd.w.push_back(n02(gen));
  ms.push_back(odd);

  // One pack_stage.py process quantises every (matrix, format) pair listed in a JSON manifest.
  struct Job {
    const M* m;
    WDType t;
    std::string out;
  };
  std::vector<Job> jobs;
  std::string manifest = "[";
  for (const M& m : ms) {
    const std::string in = kData + "/stage_formats_" + m.name + ".f32";
    std::vector<uint8_t> raw(m.w.size() * 4);
    std::memcpy(raw.data(), m.w.data(), raw.size());
    CHECK(agent_test::write_file(in, raw));
    for (int f = 0; f < confidant::kNumWDTypes; ++f) {
      const WDType t = static_cast<WDType>(f);
      if (confidant::wdtype_is_grouped(t) && m.cols % confidant::kGroup != 0) continue;
      jobs.push_back({&m, t, in + "." + confidant::wdtype_name(t)});
      manifest += std::string(jobs.size() > 1 ? "," : "") + "{\"format\":\"" + confidant::wdtype_name(t) +
                  "\",\"rows\":" + std::to_string(m.rows) + ",\"cols\":" + std::to_string(m.cols) + ",\"in\":\"" +
                  in + "\",\"out\":\"" + jobs.back().out + "\"}";
    }
  }
  manifest += "]";
  const std::string manifest_path = kData + "/stage_formats_jobs.json";
  CHECK(agent_test::write_file(manifest_path, std::vector<uint8_t>(manifest.begin(), manifest.end())));
  const std::string cmd =
      std::string("\"") + PYTHON_EXE + "\" \"" + PACK_STAGE_PY + "\" --quantize-jobs \"" + manifest_path + "\"";
  const int rc = std::system(cmd.c_str());
  CHECK_MSG(rc == 0, "failed: " + cmd);
  for (const Job& j : jobs) {
    const std::vector<uint8_t> py = agent_test::read_file(j.out);
    std::vector<uint8_t> ref(confidant::wdtype_matrix_bytes(j.t, j.m->rows, j.m->cols));
    confidant::quantize_matrix(j.t, ref.data(), j.m->w.data(), j.m->rows, j.m->cols);
    size_t diff = 0;
    while (diff < ref.size() && diff < py.size() && ref[diff] == py[diff]) ++diff;
    CHECK_MSG(py == ref, j.m->name + " " + confidant::wdtype_name(j.t) +
                             ": pack_stage.py differs from quantize_matrix at byte " + std::to_string(diff) + " of " +
                             std::to_string(ref.size()));
  }
  CHECK_EQ(jobs.size(), 4u * 5 - 2);
}

// Sizes, dtypes and data that contradict the spec are refused, naming the tensor.
void check_rejections() {
  const std::string q4 = kData + "/whole_q4_0.stage";
  const std::vector<uint8_t> good = agent_test::read_file(q4);
  if (good.empty()) return;
  auto f = StageFile::open(q4);
  const std::string q = "model.layers.1.self_attn.q_proj.weight";  // [64, 64] q4_0: 128 blocks of 18 bytes
  const std::string down = "model.layers.1.mlp.down_proj.weight";  // [64, 172]: the f16 fallback
  const std::string norm = "model.layers.1.input_layernorm.weight";
  size_t nb_off = 0;
  const size_t q_dtype = entry_dtype_offset(good, q, &nb_off);
  CHECK(q_dtype != 0);
  CHECK_EQ(f->find(q)->nbytes, 64u * 2 * 18);

  {  // nbytes one block short.
    std::vector<uint8_t> b = good;
    put_u64(b, nb_off, 64 * 2 * 18 - 18);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("nbytes", b)),
                 "tensor '" + q + "': nbytes 2286 does not match q4_0 shape [64, 64] (which needs 2304 bytes)");
  }
  {  // q4_0 data relabelled fp4: 20-byte blocks need 2560 bytes.
    std::vector<uint8_t> b = good;
    b[q_dtype] = 4;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("relabel", b)),
                 "tensor '" + q + "': nbytes 2304 does not match fp4 shape [64, 64] (which needs 2560 bytes)");
  }
  {  // Unknown dtype.
    std::vector<uint8_t> b = good;
    b[q_dtype] = 5;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("dtype5", b)), "tensor '" + q + "': unsupported dtype 5");
  }
  {  // A quantised dtype on a norm.
    std::vector<uint8_t> b = good;
    b[entry_dtype_offset(good, norm, nullptr)] = 2;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("norm", b)),
                 "tensor '" + norm + "': dtype int8 is a quantised matrix format but the tensor has shape [64]");
  }
  {  // q4_0 on 172 columns.
    std::vector<uint8_t> b = good;
    b[entry_dtype_offset(good, down, nullptr)] = 3;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("cols", b)),
                 "tensor '" + down + "': dtype q4_0 needs a column count that is a multiple of 32");
  }
  {  // A flipped bit in a quantised block.
    std::vector<uint8_t> b = good;
    b[f->find(q)->offset + 100] ^= 0x01;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("crc", b)), "tensor '" + q + "': CRC-32 mismatch");
  }
  {  // int8 without its scale plane.
    const std::string i8 = kData + "/whole_int8.stage";
    std::vector<uint8_t> b = agent_test::read_file(i8);
    size_t off = 0;
    CHECK(entry_dtype_offset(b, q, &off) != 0);
    put_u64(b, off, 64 * 64);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("int8", b)),
                 "nbytes 4096 does not match int8 shape [64, 64] (which needs 4352 bytes)");
  }
}

}  // namespace

int main() {
  const std::string whole = kData + "/whole.stage";
  if (agent_test::read_file(whole).empty()) {
    CHECK_MSG(false, "missing " + whole + " (the agent.pack_stages test writes it)");
    return agent_test::finish("agent.stage_formats");
  }
  auto ref = StageFile::open(whole);
  for (WDType t : {WDType::I8, WDType::Q4_0, WDType::FP4}) check_quantised_stage(*ref, t);
  check_rejections();
#ifdef CONFIDANT_TEST_EMULATOR
  const bool emulated = std::strlen(CONFIDANT_TEST_EMULATOR) > 0;
#else
  const bool emulated = false;
#endif
  if (emulated) {
    // Host quantisation is checked on the host; an emulated target binary does not spawn the host's python.
    std::printf("agent.stage_formats: emulated run, pack_stage.py --quantize comparison skipped\n");
  } else {
    check_python_quantiser();
  }
  return agent_test::finish("agent.stage_formats");
}
