// Typed encode/decode of every protocol-v1 payload (docs/protocol.md, "Commands"); field order follows the table.
#include "protocol.h"

#include <cstring>

namespace confidant::agent {

const char* cmd_name(uint16_t code) {
  switch (code) {
    case 0x0001: return "HELLO";
    case 0x0002: return "LOAD_STAGE";
    case 0x0003: return "SET_LORA";
    case 0x0004: return "FORWARD";
    case 0x0005: return "BACKWARD";
    case 0x0006: return "GRAD_NORM";
    case 0x0007: return "OPTIM_STEP";
    case 0x0008: return "GET_LORA";
    case 0x0009: return "STATS";
    case 0x000A: return "SHUTDOWN";
    case 0x000B: return "ZERO_GRAD";
    case 0x000C: return "ZO_FORWARD";
    case 0x000D: return "ZO_STEP";
    case 0x000E: return "PROFILE";
    case 0x000F: return "SET_SPLIT";
    case 0x0010: return "NOP";
    default: return nullptr;
  }
}

bool is_known_cmd(uint16_t code) { return cmd_name(code) != nullptr; }

const char* error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadFrame: return "BAD_FRAME";
    case ErrorCode::HandshakeRequired: return "HANDSHAKE_REQUIRED";
    case ErrorCode::AuthFailed: return "AUTH_FAILED";
    case ErrorCode::VersionMismatch: return "VERSION_MISMATCH";
    case ErrorCode::UnknownCommand: return "UNKNOWN_COMMAND";
    case ErrorCode::BadArgument: return "BAD_ARGUMENT";
    case ErrorCode::LoadFailed: return "LOAD_FAILED";
    case ErrorCode::OutOfMemory: return "OUT_OF_MEMORY";
    case ErrorCode::NotLoaded: return "NOT_LOADED";
    case ErrorCode::Internal: return "INTERNAL";
  }
  return "?";
}

bool error_closes_connection(ErrorCode code) {
  return code == ErrorCode::BadFrame || code == ErrorCode::HandshakeRequired || code == ErrorCode::AuthFailed ||
         code == ErrorCode::VersionMismatch;
}

std::vector<uint8_t> encode_frame(const Frame& f) {
  std::vector<uint8_t> out(kFrameHeaderBytes + f.payload.size());
  FrameHeader h = f.header;
  h.payload_bytes = static_cast<uint32_t>(f.payload.size());
  encode_header(h, out.data());
  if (!f.payload.empty()) std::memcpy(out.data() + kFrameHeaderBytes, f.payload.data(), f.payload.size());
  return out;
}

void decode_empty(const std::vector<uint8_t>& p, const char* what) {
  Reader r(p);
  r.expect_end(what);
}

// ---- HELLO ----
HelloRequest decode_hello_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  HelloRequest m;
  m.protocol_version = r.u32();
  m.token = r.string();
  r.expect_end("HELLO");
  return m;
}
std::vector<uint8_t> encode(const HelloRequest& m) {
  Writer w;
  w.u32(m.protocol_version);
  w.string(m.token);
  return w.take();
}
HelloReply decode_hello_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  HelloReply m;
  m.agent_version = r.string();
  m.protocol_version = r.u32();
  m.abi = r.string();
  m.cpu_threads = r.u32();
  m.memory_budget_bytes = r.u64();
  m.backends = r.string();
  m.short_layout = r.remaining() == 0;
  if (!m.short_layout) m.opencl_device_type = r.string();
  r.expect_end("HELLO reply");
  return m;
}
std::vector<uint8_t> encode(const HelloReply& m) {
  Writer w;
  w.string(m.agent_version);
  w.u32(m.protocol_version);
  w.string(m.abi);
  w.u32(m.cpu_threads);
  w.u64(m.memory_budget_bytes);
  w.string(m.backends);
  if (!m.short_layout) w.string(m.opencl_device_type);
  return w.take();
}

// ---- LOAD_STAGE ----
LoadStageRequest decode_load_stage_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  LoadStageRequest m;
  m.path = r.string();
  m.lora_rank = r.u32();
  m.lora_alpha = r.f32();
  m.target_mask = r.u32();
  m.flags = r.u32();
  r.expect_end("LOAD_STAGE");
  return m;
}
std::vector<uint8_t> encode(const LoadStageRequest& m) {
  Writer w;
  w.string(m.path);
  w.u32(m.lora_rank);
  w.f32(m.lora_alpha);
  w.u32(m.target_mask);
  w.u32(m.flags);
  return w.take();
}
LoadStageReply decode_load_stage_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  LoadStageReply m;
  m.layer_start = r.u32();
  m.layer_end = r.u32();
  m.stage_flags = r.u32();
  m.weight_bytes = r.u64();
  m.lora_param_count = r.u64();
  r.expect_end("LOAD_STAGE reply");
  return m;
}
std::vector<uint8_t> encode(const LoadStageReply& m) {
  Writer w;
  w.u32(m.layer_start);
  w.u32(m.layer_end);
  w.u32(m.stage_flags);
  w.u64(m.weight_bytes);
  w.u64(m.lora_param_count);
  return w.take();
}

// ---- SET_LORA ----
SetLoraRequest decode_set_lora_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  SetLoraRequest m;
  m.tensors = r.tensor_list();
  r.expect_end("SET_LORA");
  return m;
}
std::vector<uint8_t> encode(const SetLoraRequest& m) {
  Writer w;
  w.tensor_list(m.tensors);
  return w.take();
}

// ---- FORWARD ----
ForwardRequest decode_forward_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  ForwardRequest m;
  m.micro_id = r.u32();
  m.flags = r.u32();
  m.input = r.tensor();
  m.has_targets = r.flag();
  if (m.has_targets) {
    m.targets = r.tensor();
    m.mask = r.tensor();
  }
  r.expect_end("FORWARD");
  return m;
}
std::vector<uint8_t> encode(const ForwardRequest& m) {
  Writer w;
  w.u32(m.micro_id);
  w.u32(m.flags);
  w.tensor(m.input);
  w.flag(m.has_targets);
  if (m.has_targets) {
    w.tensor(m.targets);
    w.tensor(m.mask);
  }
  return w.take();
}
ForwardReply decode_forward_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  ForwardReply m;
  m.output_kind = r.u8();
  if (m.output_kind == 0) {
    m.hidden = r.tensor();
  } else if (m.output_kind == 1) {
    m.loss_sum = r.f64();
    m.weight_sum = r.f64();
    m.has_logits = r.flag();
    if (m.has_logits) m.logits = r.tensor();
  } else {
    throw DecodeError("FORWARD reply output_kind must be 0 or 1, got " + std::to_string(m.output_kind));
  }
  r.expect_end("FORWARD reply");
  return m;
}
std::vector<uint8_t> encode(const ForwardReply& m) {
  Writer w;
  w.u8(m.output_kind);
  if (m.output_kind == 0) {
    w.tensor(m.hidden);
  } else {
    w.f64(m.loss_sum);
    w.f64(m.weight_sum);
    w.flag(m.has_logits);
    if (m.has_logits) w.tensor(m.logits);
  }
  return w.take();
}

// ---- BACKWARD ----
BackwardRequest decode_backward_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  BackwardRequest m;
  m.micro_id = r.u32();
  m.loss_scale = r.f32();
  m.has_grad = r.flag();
  if (m.has_grad) m.grad_output = r.tensor();
  r.expect_end("BACKWARD");
  return m;
}
std::vector<uint8_t> encode(const BackwardRequest& m) {
  Writer w;
  w.u32(m.micro_id);
  w.f32(m.loss_scale);
  w.flag(m.has_grad);
  if (m.has_grad) w.tensor(m.grad_output);
  return w.take();
}
BackwardReply decode_backward_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  BackwardReply m;
  m.has_grad_input = r.flag();
  if (m.has_grad_input) m.grad_input = r.tensor();
  r.expect_end("BACKWARD reply");
  return m;
}
std::vector<uint8_t> encode(const BackwardReply& m) {
  Writer w;
  w.flag(m.has_grad_input);
  if (m.has_grad_input) w.tensor(m.grad_input);
  return w.take();
}

// ---- GRAD_NORM ----
GradNormReply decode_grad_norm_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  GradNormReply m;
  m.sum_squares = r.f64();
  r.expect_end("GRAD_NORM reply");
  return m;
}
std::vector<uint8_t> encode(const GradNormReply& m) {
  Writer w;
  w.f64(m.sum_squares);
  return w.take();
}

// ---- OPTIM_STEP ----
OptimStepRequest decode_optim_step_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  OptimStepRequest m;
  m.step = r.u32();
  m.lr = r.f32();
  m.beta1 = r.f32();
  m.beta2 = r.f32();
  m.eps = r.f32();
  m.weight_decay = r.f32();
  m.grad_scale = r.f32();
  r.expect_end("OPTIM_STEP");
  return m;
}
std::vector<uint8_t> encode(const OptimStepRequest& m) {
  Writer w;
  w.u32(m.step);
  w.f32(m.lr);
  w.f32(m.beta1);
  w.f32(m.beta2);
  w.f32(m.eps);
  w.f32(m.weight_decay);
  w.f32(m.grad_scale);
  return w.take();
}

// ---- GET_LORA ----
GetLoraRequest decode_get_lora_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  GetLoraRequest m;
  m.flags = r.u32();
  r.expect_end("GET_LORA");
  return m;
}
std::vector<uint8_t> encode(const GetLoraRequest& m) {
  Writer w;
  w.u32(m.flags);
  return w.take();
}
GetLoraReply decode_get_lora_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  GetLoraReply m;
  m.tensors = r.tensor_list();
  r.expect_end("GET_LORA reply");
  return m;
}
std::vector<uint8_t> encode(const GetLoraReply& m) {
  Writer w;
  w.tensor_list(m.tensors);
  return w.take();
}

// ---- STATS ----
StatsReply decode_stats_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  StatsReply m;
  m.rss_bytes = r.u64();
  m.peak_rss_bytes = r.u64();
  m.busy_us = r.u64();
  m.forward_count = r.u64();
  m.backward_count = r.u64();
  m.bytes_in = r.u64();
  m.bytes_out = r.u64();
  m.short_layout = r.remaining() == 0;
  if (!m.short_layout) {
    m.primary_busy_us = r.u64();
    m.secondary_busy_us = r.u64();
    m.has_temperature = r.flag();
    if (m.has_temperature) {
      m.temperature_millicelsius = r.i32();
      m.temperature_zone = r.string();
    }
  }
  r.expect_end("STATS reply");
  return m;
}
std::vector<uint8_t> encode(const StatsReply& m) {
  Writer w;
  w.u64(m.rss_bytes);
  w.u64(m.peak_rss_bytes);
  w.u64(m.busy_us);
  w.u64(m.forward_count);
  w.u64(m.backward_count);
  w.u64(m.bytes_in);
  w.u64(m.bytes_out);
  if (!m.short_layout) {
    w.u64(m.primary_busy_us);
    w.u64(m.secondary_busy_us);
    w.flag(m.has_temperature);
    if (m.has_temperature) {
      w.i32(m.temperature_millicelsius);
      w.string(m.temperature_zone);
    }
  }
  return w.take();
}

// ---- arrays (u32 count, then count values) ----
namespace {

template <class T, class ReadOne>
std::vector<T> read_array(Reader& r, size_t elem_bytes, const char* what, ReadOne read_one) {
  const uint32_t n = r.u32();
  // Checked against the bytes present before allocating anything.
  if (uint64_t(n) * elem_bytes > r.remaining()) {
    throw DecodeError(std::string(what) + " count " + std::to_string(n) + " needs " +
                      std::to_string(uint64_t(n) * elem_bytes) + " bytes, " + std::to_string(r.remaining()) +
                      " left in the payload");
  }
  std::vector<T> out;
  out.reserve(n);
  for (uint32_t i = 0; i < n; ++i) out.push_back(read_one(r));
  return out;
}

std::vector<float> read_f32_array(Reader& r, const char* what) {
  return read_array<float>(r, 4, what, [](Reader& rr) { return rr.f32(); });
}
std::vector<double> read_f64_array(Reader& r, const char* what) {
  return read_array<double>(r, 8, what, [](Reader& rr) { return rr.f64(); });
}
void write_f32_array(Writer& w, const std::vector<float>& v) {
  w.u32(static_cast<uint32_t>(v.size()));
  for (float x : v) w.f32(x);
}
void write_f64_array(Writer& w, const std::vector<double>& v) {
  w.u32(static_cast<uint32_t>(v.size()));
  for (double x : v) w.f64(x);
}

}  // namespace

// ---- ZO_FORWARD ----
ZoForwardRequest decode_zo_forward_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  ZoForwardRequest m;
  m.seed = r.u64();
  m.step = r.u32();
  m.queries = r.u32();
  m.first_query = r.u32();
  m.eps = r.f32();
  m.flags = r.u32();
  m.input = r.tensor();
  m.has_targets = r.flag();
  if (m.has_targets) {
    m.targets = r.tensor();
    m.mask = r.tensor();
  }
  r.expect_end("ZO_FORWARD");
  return m;
}
std::vector<uint8_t> encode(const ZoForwardRequest& m) {
  Writer w;
  w.u64(m.seed);
  w.u32(m.step);
  w.u32(m.queries);
  w.u32(m.first_query);
  w.f32(m.eps);
  w.u32(m.flags);
  w.tensor(m.input);
  w.flag(m.has_targets);
  if (m.has_targets) {
    w.tensor(m.targets);
    w.tensor(m.mask);
  }
  return w.take();
}
ZoForwardReply decode_zo_forward_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  ZoForwardReply m;
  m.output_kind = r.u8();
  if (m.output_kind == 0) {
    m.hidden = r.tensor();
  } else if (m.output_kind == 1) {
    m.copy_loss_sums = read_f64_array(r, "ZO_FORWARD reply copy_loss_sums");
    m.copy_weight_sums = read_f64_array(r, "ZO_FORWARD reply copy_weight_sums");
    if (m.copy_loss_sums.size() != m.copy_weight_sums.size()) {
      throw DecodeError("ZO_FORWARD reply has " + std::to_string(m.copy_loss_sums.size()) + " copy_loss_sums but " +
                        std::to_string(m.copy_weight_sums.size()) + " copy_weight_sums (one of each per copy)");
    }
  } else {
    throw DecodeError("ZO_FORWARD reply output_kind must be 0 or 1, got " + std::to_string(m.output_kind));
  }
  r.expect_end("ZO_FORWARD reply");
  return m;
}
std::vector<uint8_t> encode(const ZoForwardReply& m) {
  Writer w;
  w.u8(m.output_kind);
  if (m.output_kind == 0) {
    w.tensor(m.hidden);
  } else {
    write_f64_array(w, m.copy_loss_sums);
    write_f64_array(w, m.copy_weight_sums);
  }
  return w.take();
}

// ---- ZO_STEP ----
ZoStepRequest decode_zo_step_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  ZoStepRequest m;
  m.seed = r.u64();
  m.step = r.u32();
  m.lr = r.f32();
  m.g = read_f32_array(r, "ZO_STEP g");
  r.expect_end("ZO_STEP");
  return m;
}
std::vector<uint8_t> encode(const ZoStepRequest& m) {
  Writer w;
  w.u64(m.seed);
  w.u32(m.step);
  w.f32(m.lr);
  write_f32_array(w, m.g);
  return w.take();
}

// ---- PROFILE ----
ProfileRequestMsg decode_profile_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  ProfileRequestMsg m;
  m.batch = r.u32();
  m.seq_len = r.u32();
  m.reps = r.u32();
  r.expect_end("PROFILE");
  return m;
}
std::vector<uint8_t> encode(const ProfileRequestMsg& m) {
  Writer w;
  w.u32(m.batch);
  w.u32(m.seq_len);
  w.u32(m.reps);
  return w.take();
}
ProfileReply decode_profile_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  ProfileReply m;
  m.json = r.string();
  r.expect_end("PROFILE reply");
  return m;
}
std::vector<uint8_t> encode(const ProfileReply& m) {
  Writer w;
  w.string(m.json);
  return w.take();
}

// ---- SET_SPLIT ----
SetSplitRequest decode_set_split_request(const std::vector<uint8_t>& p) {
  Reader r(p);
  SetSplitRequest m;
  m.layers = read_array<SplitEntry>(r, 8, "SET_SPLIT layer", [](Reader& rr) {
    SplitEntry e;
    e.gpu_kv_groups = rr.u32();
    e.gpu_mlp_cols = rr.u32();
    return e;
  });
  r.expect_end("SET_SPLIT");
  return m;
}
std::vector<uint8_t> encode(const SetSplitRequest& m) {
  Writer w;
  w.u32(static_cast<uint32_t>(m.layers.size()));
  for (const SplitEntry& e : m.layers) {
    w.u32(e.gpu_kv_groups);
    w.u32(e.gpu_mlp_cols);
  }
  return w.take();
}

// ---- ERROR ----
ErrorReply decode_error_reply(const std::vector<uint8_t>& p) {
  Reader r(p);
  ErrorReply m;
  m.code = static_cast<ErrorCode>(r.u32());
  m.message = r.string();
  r.expect_end("ERROR");
  return m;
}
std::vector<uint8_t> encode(const ErrorReply& m) {
  Writer w;
  w.u32(static_cast<uint32_t>(m.code));
  w.string(m.message);
  return w.take();
}

}  // namespace confidant::agent
