// Stage file validation against files packed by the independent pack_stage.py: a good file maps with the right
// config, and truncation, a flipped data byte, a bad magic, a shape that contradicts the header and an
// out-of-bounds tensor are refused with errors that name the file and the tensor. The optional features (flag
// bit 4: the scaled-RoPE table rope.inv_freq; flag bit 5: sliding_window at offset 80): files packed with them load
// and expose their values, and a bad frequency, a wrong dtype or shape, a flag without its tensor or field and a
// field without its flag are refused.
#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "confidant/ref_ops.h"
#include "crc32.h"
#include "stage_file.h"

using namespace confidant::agent;

namespace {

const std::string kData = AGENT_TEST_DATA;

std::string write_variant(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = kData + "/stage_file_test_" + name + ".stage";
  CHECK(agent_test::write_file(path, bytes));
  return path;
}

void put_u32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const std::vector<uint8_t>& b, size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(b[off + i]) << (8 * i);
  return v;
}
void put_f32(std::vector<uint8_t>& b, size_t off, float f) {
  uint32_t v;
  std::memcpy(&v, &f, 4);
  put_u32(b, off, v);
}

// Byte positions of tensor-table entry 0's fields (the rope table is the first tensor of a stage with flag bit 4).
struct Entry0 {
  size_t dtype, ndim, dims, offset, nbytes, crc;
};
Entry0 entry0(const StageTensor& t) {
  Entry0 e;
  e.dtype = 96 + 2 + t.name.size();
  e.ndim = e.dtype + 1;
  e.dims = e.ndim + 1;
  e.offset = e.dims + 8 * t.dims.size();
  e.nbytes = e.offset + 8;
  e.crc = e.nbytes + 8;
  return e;
}

// transformers' llama3 rule in double (an independent check of pack_stage.py's float32 steps).
double llama3_expected(double f, double factor, double low, double high, double old_ctx) {
  const double wavelen = 2 * 3.14159265358979323846 / f;
  if (wavelen < old_ctx / high) return f;
  if (wavelen > old_ctx / low) return f / factor;
  const double smooth = (old_ctx / wavelen - low) / (high - low);
  return (1 - smooth) * f / factor + smooth * f;
}

// The rope-feature checks (packed by agent.pack_stages_llama3 / agent.pack_stages_window with the --config of
// CMakeLists.txt: llama3 factor 8, low 1, high 8, original context 256; window 8 with a factor-1 linear scaling).
void rope_and_window(const std::vector<uint8_t>& good) {
  const std::string l3_path = kData + "/whole_llama3.stage";
  const std::vector<uint8_t> l3 = agent_test::read_file(l3_path);
  CHECK_MSG(!l3.empty(), "missing " + l3_path + " (the agent.pack_stages_llama3 test writes it)");
  if (l3.empty()) return;
  const std::vector<float> plain = confidant::ref::rope_default_inv_freq(8, 10000.0f);

  // Loads; the table is the first tensor, f32 [head_dim/2], and holds the llama3 frequencies: pair 0 (wavelength
  // 2pi) kept, pair 1 (62.8, between 256/8 and 256/1) interpolated, pairs 2 and 3 (628, 6283) divided by 8.
  auto f = StageFile::open(l3_path);
  const StageConfig& c = f->config();
  CHECK_EQ(c.flags, kStageHasEmbedding | kStageHasHead | kStageTiedEmbeddings | kStageRopeInvFreq);
  CHECK(c.rope_inv_freq());
  CHECK_EQ(c.sliding_window, 0u);
  CHECK_EQ(f->tensors().size(), 48u);
  const StageTensor& t = f->tensors()[0];
  CHECK(t.name == kRopeInvFreqTensor && f->find(kRopeInvFreqTensor) == &t);
  CHECK(t.dtype == StageDType::F32 && t.dims == std::vector<uint64_t>{4} && t.nbytes == 16);
  CHECK_EQ(f->tensor_bytes(), 260032u * 4 + 16);
  float table[4];
  std::memcpy(table, t.data, sizeof table);
  for (int i = 0; i < 4; ++i) {
    const double want = llama3_expected(plain[i], 8.0, 1.0, 8.0, 256.0);
    CHECK_MSG(std::fabs(table[i] - want) <= 1e-6 * want, "rope.inv_freq[" + std::to_string(i) + "] = " +
                                                             std::to_string(table[i]) + ", llama3 gives " +
                                                             std::to_string(want));
  }
  CHECK(table[0] == plain[0] && table[2] == plain[2] / 8 && table[3] == plain[3] / 8);
  CHECK(table[1] > plain[1] / 8 && table[1] < plain[1]);
  // Every stage with the flag holds the table, also a middle stage.
  auto mid = StageFile::open(kData + "/mid_llama3.stage");
  CHECK_EQ(mid->tensors().size(), 19u);
  CHECK(mid->config().rope_inv_freq() && mid->tensors()[0].name == kRopeInvFreqTensor);
  CHECK(std::memcmp(mid->tensors()[0].data, t.data, 16) == 0);

  // A window of 8 with a factor-1 linear scaling: both flags, the field, and a table equal to the plain one.
  auto w = StageFile::open(kData + "/whole_window8.stage");
  CHECK_EQ(w->config().sliding_window, 8u);
  CHECK_EQ(w->config().flags, kStageHasEmbedding | kStageHasHead | kStageTiedEmbeddings | kStageRopeInvFreq |
                                  kStageSlidingWindow);
  CHECK(std::memcmp(w->find(kRopeInvFreqTensor)->data, plain.data(), 16) == 0);

  const Entry0 e = entry0(t);
  CHECK_EQ(size_t(l3[e.dtype]), size_t(0));
  // A frequency that is not positive and finite, with a matching CRC (a value check, not corruption).
  struct BadValue {
    int index;
    float value;
    const char* shown;
  };
  const BadValue bad_values[] = {{2, 0.0f, "frequency 2 is 0"},
                                 {1, -0.5f, "frequency 1 is -0.5"},
                                 {3, std::numeric_limits<float>::quiet_NaN(), "nan"},
                                 {0, std::numeric_limits<float>::infinity(), "frequency 0 is inf"}};
  for (const BadValue& bv : bad_values) {
    std::vector<uint8_t> b = l3;
    put_f32(b, t.offset + 4 * bv.index, bv.value);
    put_u32(b, e.crc, crc32(0, b.data() + t.offset, 16));
    const std::string p = write_variant("rope_value" + std::to_string(bv.index), b);
    CHECK_THROWS(StageFileError, StageFile::open(p), "tensor 'rope.inv_freq': frequency " + std::to_string(bv.index));
    CHECK_THROWS(StageFileError, StageFile::open(p), bv.shown);
    CHECK_THROWS(StageFileError, StageFile::open(p), "must be positive and finite");
  }
  // The same value without the CRC fixed is corruption, reported as such.
  {
    std::vector<uint8_t> b = l3;
    put_f32(b, t.offset + 8, std::numeric_limits<float>::quiet_NaN());
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_crc", b)),
                 "tensor 'rope.inv_freq': CRC-32 mismatch");
  }
  // Wrong dtype: f16 with a consistent byte count, f16 with the f32 byte count, a quantised code on a vector.
  {
    std::vector<uint8_t> b = l3;
    b[e.dtype] = 1;
    put_u64(b, e.nbytes, 8);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_f16", b)), "tensor 'rope.inv_freq' must be f32");
    put_u64(b, e.nbytes, 16);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_f16_size", b)),
                 "tensor 'rope.inv_freq': nbytes 16 does not match f16 shape [4]");
    b[e.dtype] = 2;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_int8", b)),
                 "tensor 'rope.inv_freq': dtype int8 is a quantised matrix format but the tensor has shape [4]");
  }
  // Wrong length: [8] (32 bytes, still inside its 64-byte slot) for head_dim 8.
  {
    std::vector<uint8_t> b = l3;
    put_u64(b, e.dims, 8);
    put_u64(b, e.nbytes, 32);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_shape", b)),
                 "tensor 'rope.inv_freq' has shape [8], the config needs [4]");
  }
  // The flag without the tensor, and the tensor without the flag.
  {
    std::vector<uint8_t> b = good;
    put_u32(b, 60, get_u32(b, 60) | kStageRopeInvFreq);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_missing", b)),
                 "tensor 'rope.inv_freq' is missing (expected shape [4])");
    std::vector<uint8_t> u = l3;
    put_u32(u, 60, get_u32(u, 60) & ~kStageRopeInvFreq);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("rope_unflagged", u)),
                 "unexpected tensor 'rope.inv_freq'");
  }
  // sliding_window: a value without flag bit 5, the flag without a value, the flag cleared on a windowed file.
  {
    std::vector<uint8_t> b = good;
    put_u32(b, 80, 4096);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("window_noflag", b)),
                 "sliding_window 4096 and flag bit 5 disagree");
    b = good;
    put_u32(b, 60, get_u32(b, 60) | kStageSlidingWindow);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("window_novalue", b)),
                 "sliding_window 0 and flag bit 5 disagree");
    const std::vector<uint8_t> w8 = agent_test::read_file(kData + "/whole_window8.stage");
    CHECK(!w8.empty() && get_u32(w8, 80) == 8);
    if (!w8.empty()) {
      b = w8;
      put_u32(b, 60, get_u32(b, 60) & ~kStageSlidingWindow);
      CHECK_THROWS(StageFileError, StageFile::open(write_variant("window_flagcleared", b)),
                   "sliding_window 8 and flag bit 5 disagree");
    }
    // With both set, any positive window loads (it only limits FORWARD's sequence length).
    b = good;
    put_u32(b, 60, get_u32(b, 60) | kStageSlidingWindow);
    put_u32(b, 80, 4096);
    CHECK_EQ(StageFile::open(write_variant("window_ok", b))->config().sliding_window, 4096u);
  }
  // Bits above 5 are still unknown.
  {
    std::vector<uint8_t> b = good;
    put_u32(b, 60, get_u32(b, 60) | (1u << 6));
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("flag6", b)), "unknown flag bits 0x00000047");
  }
}

}  // namespace

int main() {
  const std::string whole = kData + "/whole.stage";
  const std::vector<uint8_t> good = agent_test::read_file(whole);
  CHECK_MSG(!good.empty(), "missing " + whole + " (the agent.pack_stages test writes it)");
  if (good.empty()) return agent_test::finish("agent.stage_file");

  // A good whole-model stage.
  auto f = StageFile::open(whole);
  const StageConfig& c = f->config();
  CHECK_EQ(c.hidden_size, 64u);
  CHECK_EQ(c.intermediate_size, 172u);
  CHECK_EQ(c.num_layers, 5u);
  CHECK_EQ(c.num_heads, 8u);
  CHECK_EQ(c.num_kv_heads, 4u);
  CHECK_EQ(c.head_dim, 8u);
  CHECK_EQ(c.vocab_size, 512u);
  CHECK(c.rms_norm_eps == 1e-5f && c.rope_theta == 10000.0f);
  CHECK_EQ(c.layer_start, 0u);
  CHECK_EQ(c.layer_end, 5u);
  CHECK_EQ(c.flags, kStageHasEmbedding | kStageHasHead | kStageTiedEmbeddings);
  CHECK_EQ(f->tensors().size(), 47u);
  CHECK_EQ(f->tensor_bytes(), 260032u * 4);
  const StageTensor* up3 = f->find("model.layers.3.mlp.up_proj.weight");
  CHECK(up3 && up3->dims == (std::vector<uint64_t>{172, 64}));
  CHECK(f->find("lm_head.weight") == nullptr);

  // A middle stage (no embedding, no head) and a last stage with its own copy of the tied embedding.
  auto mid = StageFile::open(kData + "/mid.stage");
  CHECK_EQ(mid->config().layer_start, 1u);
  CHECK_EQ(mid->tensors().size(), 18u);
  auto last = StageFile::open(kData + "/last.stage");
  CHECK(last->find("model.embed_tokens.weight") != nullptr && last->config().has_head());

  // Truncated: names the file and both sizes.
  {
    std::vector<uint8_t> b(good.begin(), good.end() - 100);
    const std::string p = write_variant("truncated", b);
    CHECK_THROWS(StageFileError, StageFile::open(p), "truncated");
    CHECK_THROWS(StageFileError, StageFile::open(p), p);
    CHECK_THROWS(StageFileError, StageFile::open(p), std::to_string(good.size()));
  }
  // Shorter than the header.
  {
    std::vector<uint8_t> b(good.begin(), good.begin() + 40);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("tiny", b)), "header");
  }
  // One flipped data byte: the CRC of that tensor, by name.
  {
    std::vector<uint8_t> b = good;
    b[up3->offset + 1234] ^= 0x10;
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("flipped", b)),
                 "tensor 'model.layers.3.mlp.up_proj.weight': CRC-32 mismatch");
  }
  // Bad magic.
  {
    std::vector<uint8_t> b = good;
    std::memcpy(b.data(), "GGUF\0\0\0\0", 8);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("magic", b)), "bad magic");
  }
  // Unsupported version.
  {
    std::vector<uint8_t> b = good;
    put_u32(b, 8, 2);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("version", b)), "format_version 2");
  }
  // The header's config contradicts the tensor shapes (intermediate 172 -> 173).
  {
    std::vector<uint8_t> b = good;
    put_u32(b, 20, 173);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("shape", b)),
                 "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [172, 64], the config needs [173, 64]");
  }
  // The first tensor's data offset points past the end of the file.
  {
    std::vector<uint8_t> b = good;
    const StageTensor& t0 = f->tensors()[0];
    const size_t entry = 96 + 2 + t0.name.size() + 2 + 8 * t0.dims.size();  // offset field of entry 0
    put_u64(b, entry, good.size() + 64 * 10);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("bounds", b)), "tensor '" + t0.name + "'");
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("bounds", b)), "inside the data region");
  }
  // A layer range outside the model.
  {
    std::vector<uint8_t> b = good;
    put_u32(b, 56, 6);
    CHECK_THROWS(StageFileError, StageFile::open(write_variant("range", b)), "layer range [0, 6)");
  }
  // A file that does not exist.
  CHECK_THROWS(StageFileError, StageFile::open(kData + "/no-such.stage"), "cannot open");
  // Files without the optional features: no flag bit 4 or 5, no table, no window.
  CHECK(!c.rope_inv_freq() && c.sliding_window == 0 && f->find(kRopeInvFreqTensor) == nullptr);
  rope_and_window(good);
  return agent_test::finish("agent.stage_file");
}
