// A stage weight file (docs/stage-format.md) mapped read-only and fully validated: header, tensor table, bounds,
// shapes against the header's model config, byte sizes of the weight formats (f32, f16, int8, q4_0, fp4), CRC-32 of
// every tensor. Not the compute (stage_model.h), which takes matrices through StageTensor::view().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "confidant/weights.h"

namespace confidant::agent {

constexpr uint32_t kStageFormatVersion = 1;
constexpr size_t kStageHeaderBytes = 96;
constexpr uint32_t kStageHasEmbedding = 1u << 0;
constexpr uint32_t kStageHasHead = 1u << 1;
constexpr uint32_t kStageTiedEmbeddings = 1u << 2;
constexpr uint32_t kStageAttentionBias = 1u << 3;
constexpr uint32_t kStageRopeInvFreq = 1u << 4;     // tensor "rope.inv_freq" [head_dim/2] f32: scaled RoPE
constexpr uint32_t kStageSlidingWindow = 1u << 5;   // header u32 sliding_window at offset 80 is set
constexpr const char* kRopeInvFreqTensor = "rope.inv_freq";

struct StageConfig {
  uint32_t hidden_size = 0;
  uint32_t intermediate_size = 0;
  uint32_t num_layers = 0;  // of the whole model
  uint32_t num_heads = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t vocab_size = 0;
  float rms_norm_eps = 0;
  float rope_theta = 0;
  uint32_t layer_start = 0;
  uint32_t layer_end = 0;  // exclusive
  uint32_t flags = 0;
  // Mistral-style attention window (keys within this many positions); 0 = none. The agent computes full causal
  // attention, which equals windowed attention only while T <= sliding_window, so longer forwards are refused.
  uint32_t sliding_window = 0;

  bool has_embedding() const { return flags & kStageHasEmbedding; }
  bool has_head() const { return flags & kStageHasHead; }
  bool tied_embeddings() const { return flags & kStageTiedEmbeddings; }
  bool attention_bias() const { return flags & kStageAttentionBias; }
  bool rope_inv_freq() const { return flags & kStageRopeInvFreq; }
  uint32_t q_dim() const { return num_heads * head_dim; }
  uint32_t kv_dim() const { return num_kv_heads * head_dim; }
};

// A stage tensor's dtype code is the kernels' weight format (confidant/weights.h): 0 f32, 1 f16, 2 int8 (per-row
// scales), 3 q4_0, 4 fp4. The quantised ones (2..4) appear only on 2-D matrices.
using StageDType = confidant::WDType;

struct StageTensor {
  std::string name;
  StageDType dtype = StageDType::F32;
  std::vector<uint64_t> dims;
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  uint32_t crc = 0;
  const uint8_t* data = nullptr;  // inside the mapping

  bool quantized() const { return dtype != StageDType::F32 && dtype != StageDType::F16; }
  // The tensor as a read-only weight matrix for the backends (no copy; valid while the StageFile lives).
  // Throws StageFileError unless the tensor is 2-D ([rows = out features, cols = in features]).
  confidant::WeightView view() const;
};

class StageFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StageFile {
 public:
  // Maps and validates the whole file; throws StageFileError naming the file (and tensor) on any defect.
  static std::unique_ptr<StageFile> open(const std::string& path);
  ~StageFile();
  StageFile(const StageFile&) = delete;
  StageFile& operator=(const StageFile&) = delete;

  const std::string& path() const { return path_; }
  const StageConfig& config() const { return config_; }
  const std::vector<StageTensor>& tensors() const { return tensors_; }
  const StageTensor* find(const std::string& name) const;
  uint64_t file_bytes() const { return size_; }
  uint64_t tensor_bytes() const;  // sum of nbytes

 private:
  StageFile() = default;
  void parse();
  [[noreturn]] void fail(const std::string& what) const;
  void check_size(const StageTensor& t, uint64_t elements, const std::string& who) const;

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;             // base_ from mmap; otherwise owned_ holds the bytes
  std::vector<uint8_t> owned_;      // fallback where mmap is unavailable
  StageConfig config_;
  std::vector<StageTensor> tensors_;
};

// The tensors (name, shape) a stage with this config must hold, in the order of docs/stage-format.md.
std::vector<std::pair<std::string, std::vector<uint64_t>>> expected_stage_tensors(const StageConfig& c);

}  // namespace confidant::agent
