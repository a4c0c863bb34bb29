// Maps a stage file read-only and checks everything docs/stage-format.md promises before any weight is used.
#include "stage_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include "crc32.h"

namespace confidant::agent {

namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const uint8_t* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }
float lef32(const uint8_t* p) {
  uint32_t b = le32(p);
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

std::string dims_string(const std::vector<uint64_t>& d) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < d.size(); ++i) os << (i ? ", " : "") << d[i];
  os << "]";
  return os.str();
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<uint64_t>>> expected_stage_tensors(const StageConfig& c) {
  std::vector<std::pair<std::string, std::vector<uint64_t>>> out;
  const uint64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, Q = c.q_dim(), KV = c.kv_dim();
  if (c.rope_inv_freq()) out.push_back({kRopeInvFreqTensor, {uint64_t(c.head_dim / 2)}});
  if (c.has_embedding()) out.push_back({"model.embed_tokens.weight", {V, H}});
  for (uint32_t i = c.layer_start; i < c.layer_end; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", {H}});
    out.push_back({p + "self_attn.q_proj.weight", {Q, H}});
    out.push_back({p + "self_attn.k_proj.weight", {KV, H}});
    out.push_back({p + "self_attn.v_proj.weight", {KV, H}});
    out.push_back({p + "self_attn.o_proj.weight", {H, Q}});
    if (c.attention_bias()) {
      out.push_back({p + "self_attn.q_proj.bias", {Q}});
      out.push_back({p + "self_attn.k_proj.bias", {KV}});
      out.push_back({p + "self_attn.v_proj.bias", {KV}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {H}});
    out.push_back({p + "mlp.gate_proj.weight", {I, H}});
    out.push_back({p + "mlp.up_proj.weight", {I, H}});
    out.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  if (c.has_head()) {
    out.push_back({"model.norm.weight", {H}});
    // With tied embeddings the head is embed_tokens (on a first+last stage that is the one copy listed above).
    if (!c.tied_embeddings()) {
      out.push_back({"lm_head.weight", {V, H}});
    } else if (!c.has_embedding()) {
      out.push_back({"model.embed_tokens.weight", {V, H}});
    }
  }
  return out;
}

void StageFile::fail(const std::string& what) const { throw StageFileError("stage file '" + path_ + "': " + what); }

// nbytes must be exactly what the dtype needs for the shape: elements * 4 or * 2 for f32 / f16 (any ndim), and
// wdtype_matrix_bytes for a quantised 2-D matrix (int8 codes + scales, or q4_0 / fp4 blocks of 32 columns).
void StageFile::check_size(const StageTensor& t, uint64_t elements, const std::string& who) const {
  const char* dname = confidant::wdtype_name(t.dtype);
  uint64_t want = 0;
  if (!t.quantized()) {
    want = elements * (t.dtype == StageDType::F32 ? 4 : 2);
  } else {
    if (t.dims.size() != 2) {
      fail(who + ": dtype " + dname + " is a quantised matrix format but the tensor has shape " +
           dims_string(t.dims) + " (only 2-D weight matrices may be quantised; norms and biases are f32 or f16)");
    }
    const uint64_t rows = t.dims[0], cols = t.dims[1];
    if (rows == 0 || cols == 0 || rows > 0x7FFFFFFF || cols > 0x7FFFFFFF) {
      fail(who + ": shape " + dims_string(t.dims) + " cannot be stored as " + dname);
    }
    if (confidant::wdtype_is_grouped(t.dtype) && cols % confidant::kGroup != 0) {
      fail(who + ": dtype " + dname + " needs a column count that is a multiple of " +
           std::to_string(confidant::kGroup) + ", the tensor has shape " + dims_string(t.dims) +
           " (the packer stores such matrices as f16)");
    }
    want = confidant::wdtype_matrix_bytes(t.dtype, static_cast<int>(rows), static_cast<int>(cols));
  }
  if (t.nbytes != want) {
    fail(who + ": nbytes " + std::to_string(t.nbytes) + " does not match " + dname + " shape " +
         dims_string(t.dims) + " (which needs " + std::to_string(want) + " bytes)");
  }
}

confidant::WeightView StageTensor::view() const {
  if (dims.size() != 2) {
    throw StageFileError("stage tensor '" + name + "' has shape " + dims_string(dims) +
                         ": only a 2-D weight matrix has a WeightView");
  }
  if (dims[0] > 0x7FFFFFFF || dims[1] > 0x7FFFFFFF) {
    throw StageFileError("stage tensor '" + name + "' has shape " + dims_string(dims) + ": too large for a WeightView");
  }
  return confidant::WeightView::packed(dtype, data, static_cast<int>(dims[0]), static_cast<int>(dims[1]));
}

std::unique_ptr<StageFile> StageFile::open(const std::string& path) {
  std::unique_ptr<StageFile> f(new StageFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) f->fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    f->fail(std::string("cannot stat: ") + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    f->fail("not a regular file");
  }
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m != MAP_FAILED) {
      f->base_ = static_cast<const uint8_t*>(m);
      f->mapped_ = true;
    } else {
      // Some filesystems cannot be mapped: read the file instead (same checks, more memory).
      f->owned_.resize(f->size_);
      size_t got = 0;
      while (got < f->size_) {
        ssize_t n = ::pread(fd, f->owned_.data() + got, f->size_ - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          int e = errno;
          ::close(fd);
          f->fail(std::string("read failed: ") + (n == 0 ? "unexpected end of file" : std::strerror(e)));
        }
        got += static_cast<size_t>(n);
      }
      f->base_ = f->owned_.data();
    }
  }
  ::close(fd);
  f->parse();
  return f;
}

StageFile::~StageFile() {
  if (mapped_ && base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

const StageTensor* StageFile::find(const std::string& name) const {
  for (const StageTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

uint64_t StageFile::tensor_bytes() const {
  uint64_t n = 0;
  for (const StageTensor& t : tensors_) n += t.nbytes;
  return n;
}

void StageFile::parse() {
  const uint8_t* b = base_;
  if (size_ < 8 || std::memcmp(b, "CFDSTAGE", 8) != 0) {
    fail(size_ < 8 ? "file is " + std::to_string(size_) + " bytes: too short for the CFDSTAGE magic"
                   : "bad magic (expected \"CFDSTAGE\"): not a Confidant stage file");
  }
  if (size_ < kStageHeaderBytes) {
    fail("truncated: " + std::to_string(size_) + " bytes, smaller than the 96-byte header");
  }
  const uint32_t version = le32(b + 8);
  if (version != kStageFormatVersion) {
    fail("format_version " + std::to_string(version) + " is not supported (this agent reads version 1)");
  }
  const uint32_t tensor_count = le32(b + 12);
  StageConfig& c = config_;
  c.hidden_size = le32(b + 16);
  c.intermediate_size = le32(b + 20);
  c.num_layers = le32(b + 24);
  c.num_heads = le32(b + 28);
  c.num_kv_heads = le32(b + 32);
  c.head_dim = le32(b + 36);
  c.vocab_size = le32(b + 40);
  c.rms_norm_eps = lef32(b + 44);
  c.rope_theta = lef32(b + 48);
  c.layer_start = le32(b + 52);
  c.layer_end = le32(b + 56);
  c.flags = le32(b + 60);
  const uint64_t data_offset = le64(b + 64);
  const uint64_t file_bytes = le64(b + 72);
  c.sliding_window = le32(b + 80);

  if (file_bytes != size_) {
    fail(size_ < file_bytes ? "truncated: header says " + std::to_string(file_bytes) + " bytes, file has " +
                                  std::to_string(size_)
                            : "file has " + std::to_string(size_) + " bytes, header says " +
                                  std::to_string(file_bytes) + " (trailing data)");
  }
  if (data_offset % 64 != 0 || data_offset > file_bytes || data_offset < kStageHeaderBytes) {
    fail("data_offset " + std::to_string(data_offset) + " is not a multiple of 64 inside the file");
  }
  // Model config sanity: every later size computation relies on these.
  const uint64_t kMaxDim = 1u << 20;
  if (c.hidden_size == 0 || c.intermediate_size == 0 || c.num_heads == 0 || c.num_kv_heads == 0 ||
      c.head_dim == 0 || c.vocab_size == 0 || c.num_layers == 0 || c.hidden_size > kMaxDim ||
      c.intermediate_size > kMaxDim || c.vocab_size > (1u << 24) || c.num_heads > 4096 || c.head_dim > 4096 ||
      c.num_layers > 4096) {
    fail("implausible model config in the header (hidden " + std::to_string(c.hidden_size) + ", intermediate " +
         std::to_string(c.intermediate_size) + ", heads " + std::to_string(c.num_heads) + "/" +
         std::to_string(c.num_kv_heads) + ", head_dim " + std::to_string(c.head_dim) + ", vocab " +
         std::to_string(c.vocab_size) + ", layers " + std::to_string(c.num_layers) + ")");
  }
  if (c.num_heads % c.num_kv_heads != 0 || c.head_dim % 2 != 0) {
    fail("num_heads " + std::to_string(c.num_heads) + " must be a multiple of num_kv_heads " +
         std::to_string(c.num_kv_heads) + " and head_dim " + std::to_string(c.head_dim) + " must be even");
  }
  if (!(c.rms_norm_eps > 0) || !(c.rope_theta > 0)) fail("rms_norm_eps and rope_theta must be positive");
  if (c.layer_start > c.layer_end || c.layer_end > c.num_layers) {
    fail("layer range [" + std::to_string(c.layer_start) + ", " + std::to_string(c.layer_end) +
         ") is not inside the model's " + std::to_string(c.num_layers) + " layers");
  }
  if (c.flags & ~0x3Fu) fail("unknown flag bits " + hex32(c.flags));
  if (((c.flags & kStageSlidingWindow) != 0) != (c.sliding_window != 0)) {
    fail("sliding_window " + std::to_string(c.sliding_window) + " and flag bit 5 disagree (flags " + hex32(c.flags) +
         ")");
  }
  if (c.has_embedding() && c.layer_start != 0) fail("has_embedding is set but layer_start is not 0");
  if (c.has_head() && c.layer_end != c.num_layers) fail("has_head is set but layer_end is not the last layer");
  if (c.layer_start == c.layer_end && !c.has_embedding() && !c.has_head()) fail("the stage holds nothing");

  // Tensor table.
  size_t pos = kStageHeaderBytes;
  auto need = [&](size_t n, const std::string& what) {
    if (n > data_offset - pos) fail("tensor table overruns data_offset while reading " + what);
  };
  std::map<std::string, size_t> index;
  tensors_.reserve(tensor_count < 65536 ? tensor_count : 65536);
  for (uint32_t i = 0; i < tensor_count; ++i) {
    const std::string entry = "tensor table entry " + std::to_string(i);
    need(2, entry);
    const uint16_t name_len = le16(b + pos);
    pos += 2;
    need(name_len + 2u, entry);
    StageTensor t;
    t.name.assign(reinterpret_cast<const char*>(b + pos), name_len);
    pos += name_len;
    const std::string who = "tensor '" + t.name + "'";
    const uint8_t dtype = b[pos];
    const uint8_t ndim = b[pos + 1];
    pos += 2;
    if (dtype >= confidant::kNumWDTypes) {
      fail(who + ": unsupported dtype " + std::to_string(dtype) +
           " (0 = f32, 1 = f16, 2 = int8, 3 = q4_0, 4 = fp4)");
    }
    if (ndim < 1 || ndim > 4) fail(who + ": ndim " + std::to_string(ndim) + " is not in 1..4");
    t.dtype = static_cast<StageDType>(dtype);
    need(8u * ndim + 20u, who);
    uint64_t elements = 1;
    for (uint8_t d = 0; d < ndim; ++d) {
      uint64_t dim = le64(b + pos);
      pos += 8;
      t.dims.push_back(dim);
      if (dim > file_bytes) fail(who + ": dimension " + std::to_string(dim) + " is larger than the file");
      elements *= dim;
      if (elements > file_bytes) fail(who + ": shape " + dims_string(t.dims) + " is larger than the file");
    }
    t.offset = le64(b + pos);
    t.nbytes = le64(b + pos + 8);
    t.crc = le32(b + pos + 16);
    pos += 20;
    check_size(t, elements, who);
    if (t.offset % 64 != 0 || t.offset < data_offset || t.offset > file_bytes || t.nbytes > file_bytes - t.offset) {
      fail(who + ": data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
           ") is not 64-byte aligned inside the data region of a " + std::to_string(file_bytes) + "-byte file");
    }
    if (index.count(t.name)) fail(who + " appears twice");
    t.data = b + t.offset;
    index[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // Exactly the tensors this stage needs, with the shapes the header's config implies.
  const auto expected = expected_stage_tensors(c);
  for (const auto& e : expected) {
    auto it = index.find(e.first);
    if (it == index.end()) fail("tensor '" + e.first + "' is missing (expected shape " + dims_string(e.second) + ")");
    const StageTensor& t = tensors_[it->second];
    if (t.dims != e.second) {
      fail("tensor '" + t.name + "' has shape " + dims_string(t.dims) + ", the config needs " +
           dims_string(e.second));
    }
  }
  if (expected.size() != tensors_.size()) {
    for (const StageTensor& t : tensors_) {
      bool known = false;
      for (const auto& e : expected) known = known || e.first == t.name;
      if (!known) fail("unexpected tensor '" + t.name + "' for layers [" + std::to_string(c.layer_start) + ", " +
                       std::to_string(c.layer_end) + ") with flags " + hex32(c.flags));
    }
  }

  if (c.rope_inv_freq()) {
    const StageTensor& t = tensors_[index[kRopeInvFreqTensor]];
    if (t.dtype != StageDType::F32) fail(std::string("tensor '") + kRopeInvFreqTensor + "' must be f32");
  }

  for (const StageTensor& t : tensors_) {
    const uint32_t got = crc32(0, t.data, static_cast<size_t>(t.nbytes));
    if (got != t.crc) {
      fail("tensor '" + t.name + "': CRC-32 mismatch (stored " + hex32(t.crc) + ", data has " + hex32(got) +
           "): the file is corrupt, push it again");
    }
  }
  // After the CRCs: a value check on corrupt data would give a misleading message.
  if (c.rope_inv_freq()) {
    const StageTensor& t = tensors_[index[kRopeInvFreqTensor]];
    for (uint64_t i = 0; i < t.dims[0]; ++i) {
      const float f = lef32(t.data + 4 * i);
      if (!(f > 0) || !std::isfinite(f)) {
        fail(std::string("tensor '") + kRopeInvFreqTensor + "': frequency " + std::to_string(i) + " is " +
             std::to_string(f) + ", must be positive and finite");
      }
    }
  }
}

}  // namespace confidant::agent
