// Commands of protocol version 1 (docs/protocol.md): codes, error codes and the typed payload of every request and
// reply, with decode/encode in both directions (the agent decodes requests; tests and tools decode replies).
// Not the socket loop (server.h) nor what the commands do (session.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "wire.h"

namespace confidant::agent {

constexpr uint32_t kProtocolVersion = 1;
constexpr uint16_t kReplyBit = 0x8000;
constexpr uint16_t kErrorKind = 0xFFFF;

enum class Cmd : uint16_t {
  Hello = 0x0001,
  LoadStage = 0x0002,
  SetLora = 0x0003,
  Forward = 0x0004,
  Backward = 0x0005,
  GradNorm = 0x0006,
  OptimStep = 0x0007,
  GetLora = 0x0008,
  Stats = 0x0009,
  Shutdown = 0x000A,
  ZeroGrad = 0x000B,
  ZoForward = 0x000C,
  ZoStep = 0x000D,
  Profile = 0x000E,
  SetSplit = 0x000F,
  // No reply: the host sends it only to acknowledge a reply at the TCP level (docs/protocol.md "NOP").
  Nop = 0x0010,
};
constexpr uint16_t kLastCmd = 0x0010;  // commands are 0x0001 ..= kLastCmd
const char* cmd_name(uint16_t code);  // "HELLO", ... or nullptr when unknown
bool is_known_cmd(uint16_t code);

enum class ErrorCode : uint32_t {
  BadFrame = 1,
  HandshakeRequired = 2,
  AuthFailed = 3,
  VersionMismatch = 4,
  UnknownCommand = 5,
  BadArgument = 6,
  LoadFailed = 7,
  OutOfMemory = 8,
  NotLoaded = 9,
  Internal = 10,
};
const char* error_name(ErrorCode code);
// Whether the agent closes the connection after sending this error.
bool error_closes_connection(ErrorCode code);

struct Frame {
  FrameHeader header;
  std::vector<uint8_t> payload;
};
std::vector<uint8_t> encode_frame(const Frame& f);  // header + payload

// ---- payloads ----
struct HelloRequest {
  uint32_t protocol_version = kProtocolVersion;
  std::string token;
};
struct HelloReply {
  std::string agent_version;
  uint32_t protocol_version = kProtocolVersion;
  std::string abi;
  uint32_t cpu_threads = 0;
  uint64_t memory_budget_bytes = 0;
  std::string backends;
  // Added within version 1: the OpenCL device's CL_DEVICE_TYPE ("gpu", "cpu", "accelerator", "other"; "" without
  // OpenCL). An agent built before it ends the reply after backends: decoded with short_layout = true, and a reply
  // with short_layout set is encoded without the field (so the fixture of that layout round-trips).
  std::string opencl_device_type;
  bool short_layout = false;
};

// LOAD_STAGE target_mask bits, in the LoRA tensor order of the protocol.
enum LoraModule : int { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumLoraModules };
constexpr uint32_t kLoadFlagTrainA = 1u << 0;
constexpr uint32_t kLoadFlagRecompute = 1u << 1;  // activation checkpointing: keep only layer inputs

struct LoadStageRequest {
  std::string path;
  uint32_t lora_rank = 0;
  float lora_alpha = 0;
  uint32_t target_mask = 0;
  uint32_t flags = 0;
};
struct LoadStageReply {
  uint32_t layer_start = 0;
  uint32_t layer_end = 0;
  uint32_t stage_flags = 0;
  uint64_t weight_bytes = 0;
  uint64_t lora_param_count = 0;
};

struct SetLoraRequest {
  std::vector<NamedTensor> tensors;
};

constexpr uint32_t kForwardKeepActivations = 1u << 0;
constexpr uint32_t kForwardReturnLogits = 1u << 1;
// Relay in f16: the hidden reply is f16, and this micro-batch's BACKWARD answers grad_input in f16 (half the bytes).
constexpr uint32_t kForwardRelayF16 = 1u << 2;

struct ForwardRequest {
  uint32_t micro_id = 0;
  uint32_t flags = 0;
  Tensor input;
  bool has_targets = false;
  Tensor targets;  // when has_targets
  Tensor mask;     // when has_targets
};
struct ForwardReply {
  uint8_t output_kind = 0;  // 0: hidden, 1: loss
  Tensor hidden;            // kind 0
  double loss_sum = 0;      // kind 1
  double weight_sum = 0;    // kind 1
  bool has_logits = false;  // kind 1
  Tensor logits;            // kind 1 with has_logits
};

struct BackwardRequest {
  uint32_t micro_id = 0;
  float loss_scale = 0;
  bool has_grad = false;
  Tensor grad_output;  // when has_grad
};
struct BackwardReply {
  bool has_grad_input = false;
  Tensor grad_input;
};

struct GradNormReply {
  double sum_squares = 0;
};

struct OptimStepRequest {
  uint32_t step = 0;
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0, grad_scale = 1;
};

constexpr uint32_t kGetLoraWithGrads = 1u << 0;
// Adds the AdamW moments "<name>.adam_m" / "<name>.adam_v" of every trainable tensor (checkpoints).
constexpr uint32_t kGetLoraWithMoments = 1u << 1;
struct GetLoraRequest {
  uint32_t flags = 0;
};
struct GetLoraReply {
  std::vector<NamedTensor> tensors;
};

struct StatsReply {
  uint64_t rss_bytes = 0, peak_rss_bytes = 0, busy_us = 0, forward_count = 0, backward_count = 0, bytes_in = 0,
           bytes_out = 0;
  // Added within version 1 (docs/protocol.md "STATS"). An agent built before them ends the reply after bytes_out:
  // decoded with short_layout = true (and encoded that way when it is set).
  bool short_layout = false;
  uint64_t primary_busy_us = 0;    // of busy_us, computing on the primary (CPU) backend
  uint64_t secondary_busy_us = 0;  // the secondary (OpenCL) backend's shares, issue to completion
  bool has_temperature = false;
  int32_t temperature_millicelsius = 0;  // when has_temperature
  std::string temperature_zone;          // when has_temperature: the thermal zone's type
};

// P-RGE zeroth-order training (docs/protocol.md "ZO_FORWARD", "ZO_STEP").
struct ZoForwardRequest {
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t queries = 0;      // q: the batch holds 2q perturbed copies
  uint32_t first_query = 0;  // copies 2j, 2j+1 use z_(first_query + j): a step's queries may span requests
  float eps = 0;
  uint32_t flags = 0;  // only kForwardRelayF16: answer the hidden state in f16
  Tensor input;
  bool has_targets = false;
  Tensor targets;  // when has_targets
  Tensor mask;     // when has_targets
};
struct ZoForwardReply {
  uint8_t output_kind = 0;                           // 0: hidden, 1: per-copy loss
  Tensor hidden;                                     // kind 0
  std::vector<double> copy_loss_sums;                // kind 1: 2q entries
  std::vector<double> copy_weight_sums;              // kind 1: 2q entries (same length as copy_loss_sums)
};
struct ZoStepRequest {
  uint64_t seed = 0;
  uint32_t step = 0;
  float lr = 0;
  std::vector<float> g;  // one projected gradient per query
};

struct ProfileRequestMsg {
  uint32_t batch = 0;
  uint32_t seq_len = 0;
  uint32_t reps = 0;
};
struct ProfileReply {
  std::string json;  // UTF-8 JSON document, docs/protocol.md "PROFILE reply"
};

struct SplitEntry {
  uint32_t gpu_kv_groups = 0;
  uint32_t gpu_mlp_cols = 0;
};
struct SetSplitRequest {
  std::vector<SplitEntry> layers;  // one per local layer, in layer order
};

struct ErrorReply {
  ErrorCode code = ErrorCode::Internal;
  std::string message;
};

// decode_* throw DecodeError on a payload that does not match exactly; encode_* return the payload bytes.
HelloRequest decode_hello_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const HelloRequest& m);
HelloReply decode_hello_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const HelloReply& m);

LoadStageRequest decode_load_stage_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const LoadStageRequest& m);
LoadStageReply decode_load_stage_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const LoadStageReply& m);

SetLoraRequest decode_set_lora_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const SetLoraRequest& m);

ForwardRequest decode_forward_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ForwardRequest& m);
ForwardReply decode_forward_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ForwardReply& m);

BackwardRequest decode_backward_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const BackwardRequest& m);
BackwardReply decode_backward_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const BackwardReply& m);

GradNormReply decode_grad_norm_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const GradNormReply& m);

OptimStepRequest decode_optim_step_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const OptimStepRequest& m);

GetLoraRequest decode_get_lora_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const GetLoraRequest& m);
GetLoraReply decode_get_lora_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const GetLoraReply& m);

StatsReply decode_stats_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const StatsReply& m);

ZoForwardRequest decode_zo_forward_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ZoForwardRequest& m);
ZoForwardReply decode_zo_forward_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ZoForwardReply& m);

ZoStepRequest decode_zo_step_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ZoStepRequest& m);

ProfileRequestMsg decode_profile_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ProfileRequestMsg& m);
ProfileReply decode_profile_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ProfileReply& m);

SetSplitRequest decode_set_split_request(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const SetSplitRequest& m);

ErrorReply decode_error_reply(const std::vector<uint8_t>& p);
std::vector<uint8_t> encode(const ErrorReply& m);

// Commands whose request (or reply) payload is empty.
void decode_empty(const std::vector<uint8_t>& p, const char* what);

}  // namespace confidant::agent
