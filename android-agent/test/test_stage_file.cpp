// Stage file validation against files packed by the independent pack_stage.py: a good file maps with the right
// config, and truncation, a flipped data byte, a bad magic, a shape that contradicts the header and an
// out-of-bounds tensor are refused with errors that name the file and the tensor.
#include <cstring>

#include "check.h"
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
  return agent_test::finish("agent.stage_file");
}
