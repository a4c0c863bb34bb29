// Handshake enforcement, command dispatch and the mapping of failures to protocol error codes
// (docs/protocol.md "Handshake", "Commands", "Error codes").
#include "session.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>

#include "confidant/half.h"
#include "profiler.h"

namespace confidant::agent {

namespace {

// A failure with a protocol error code; everything else maps through dispatch's catch clauses.
class CommandError : public std::runtime_error {
 public:
  CommandError(ErrorCode c, const std::string& msg) : std::runtime_error(msg), code(c) {}
  ErrorCode code;
};

[[noreturn]] void bad_argument(const std::string& msg) { throw CommandError(ErrorCode::BadArgument, msg); }

std::string range_str(uint32_t a, uint32_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + ")"; }

// Largest micro-batch accepted: keeps every int the kernels take (N = B*T, N*dim offsets use size_t) in range.
constexpr uint64_t kMaxRows = 1u << 24;
// ZO_FORWARD / ZO_STEP: queries per step (each ZO_STEP regenerates one perturbation of every B per query).
constexpr uint32_t kMaxZoQueries = 1024;
// PROFILE: repetitions per measurement.
constexpr uint32_t kMaxProfileReps = 100;

void check_finite(float v, const char* what) {
  if (!std::isfinite(v)) bad_argument(std::string(what) + " must be finite");
}

std::vector<uint8_t> empty_payload() { return {}; }

std::string shape2(uint64_t B, uint64_t T) { return "[" + std::to_string(B) + ", " + std::to_string(T) + "]"; }

// The stage input of FORWARD and ZO_FORWARD, checked against the stage: i32 [B, T] token ids inside the
// vocabulary on the first stage, f32 or f16 [B, T, hidden] otherwise; B*T within kMaxRows. Returns B and T.
void check_stage_input(const char* cmd, const StageModel& m, const Tensor& in, uint32_t* B, uint32_t* T) {
  const StageConfig& c = m.config();
  if (m.first()) {
    if (in.dtype != DType::I32 || in.dims.size() != 2) {
      bad_argument(std::string(cmd) + " input on the first stage must be i32 [B, T] token ids, got " +
                   in.shape_string());
    }
  } else if ((in.dtype != DType::F32 && in.dtype != DType::F16) || in.dims.size() != 3 ||
             in.dims[2] != c.hidden_size) {
    bad_argument(std::string(cmd) + " input must be f32 [B, T, " + std::to_string(c.hidden_size) +
                 "] hidden states (f16 is accepted too), got " + in.shape_string());
  }
  *B = in.dims[0];
  *T = in.dims[1];
  if (*B == 0 || *T == 0 || uint64_t(*B) * *T > kMaxRows) {
    bad_argument(std::string(cmd) + " batch " + shape2(*B, *T) + " must be non-empty with B*T <= " +
                 std::to_string(kMaxRows));
  }
  if (m.first()) {
    const size_t N = size_t(*B) * *T;
    const int32_t* ids = in.i32();
    for (size_t i = 0; i < N; ++i) {
      if (ids[i] < 0 || uint32_t(ids[i]) >= c.vocab_size) {
        bad_argument(std::string(cmd) + " token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                     " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
      }
    }
  }
}

// Targets (i32 [B, T], inside the vocabulary where the mask is non-zero) and mask (f32 [B, T], finite); last
// stage only.
void check_targets(const char* cmd, const StageModel& m, const Tensor& targets, const Tensor& mask, uint32_t B,
                   uint32_t T) {
  const StageConfig& c = m.config();
  if (!m.last()) {
    bad_argument(std::string(cmd) + " has targets but this is not the last stage (targets go to the last only)");
  }
  const std::vector<uint32_t> bt{B, T};
  if (targets.dtype != DType::I32 || targets.dims != bt) {
    bad_argument(std::string(cmd) + " targets must be i32 " + shape2(B, T) + ", got " + targets.shape_string());
  }
  if (mask.dtype != DType::F32 || mask.dims != bt) {
    bad_argument(std::string(cmd) + " mask must be f32 " + shape2(B, T) + ", got " + mask.shape_string());
  }
  const size_t N = size_t(B) * T;
  const int32_t* tg = targets.i32();
  const float* mk = mask.f32();
  for (size_t i = 0; i < N; ++i) {
    if (!std::isfinite(mk[i])) {
      bad_argument(std::string(cmd) + " mask value at position " + std::to_string(i) + " is not finite");
    }
    if (mk[i] != 0.0f && (tg[i] < 0 || uint32_t(tg[i]) >= c.vocab_size)) {
      bad_argument(std::string(cmd) + " target " + std::to_string(tg[i]) + " at position " + std::to_string(i) +
                   " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
    }
  }
}

// Bytes of the f32 copy an f16 hidden input is widened into (0 for f32 or token input).
uint64_t widened_input_bytes(const Tensor& in) { return in.dtype == DType::F16 ? uint64_t(in.elements()) * 4 : 0; }

// f16 relay: hidden states and gradients narrowed for the wire (round to nearest even), widened on arrival.
Tensor make_f16(std::vector<uint32_t> dims, const float* values) {
  Tensor t;
  t.dtype = DType::F16;
  t.dims = std::move(dims);
  const size_t n = t.elements();
  t.data.resize(n * 2);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t h = confidant::float_to_half(values[i]);
    std::memcpy(t.data.data() + 2 * i, &h, 2);
  }
  return t;
}

const float* widen_f16(const Tensor& in, std::vector<float>* out) {
  const size_t n = in.elements();
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in.data.data() + 2 * i, 2);
    (*out)[i] = confidant::half_to_float(h);
  }
  return out->data();
}

// The input as the stage model takes it: token ids, or f32 hidden states (f16 widened into *widened).
void set_stage_input(const StageModel& m, const Tensor& in, std::vector<float>* widened, ForwardArgs* a) {
  if (m.first()) {
    a->tokens = in.i32();
  } else if (in.dtype == DType::F16) {
    const size_t n = in.elements();
    widened->resize(n);
    const uint8_t* src = in.data.data();
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      (*widened)[i] = confidant::half_to_float(h);
    }
    a->hidden = widened->data();
  } else {
    a->hidden = in.f32();
  }
}

}  // namespace

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Loop over the expected token's length whatever the input: the time reveals the length at most.
  const size_t n = b.size();
  volatile unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

Session::Session(SessionOptions opts) : opts_(std::move(opts)), budget_(opts_.memory_budget_bytes) {
  if (!opts_.engine) throw std::invalid_argument("Session needs an Engine (SessionOptions::engine is null)");
}
Session::~Session() = default;

Frame Session::bad_frame(uint32_t request_id, const std::string& message) {
  Frame f;
  f.header.kind = kErrorKind;
  f.header.request_id = request_id;
  f.payload = encode(ErrorReply{ErrorCode::BadFrame, message});
  return f;
}

Frame Session::handle(const Frame& request, bool* close_after) {
  *close_after = false;
  Frame reply;
  reply.header.request_id = request.header.request_id;
  const uint16_t code = request.header.kind;
  ErrorReply err;
  bool failed = true;
  try {
    reply.payload = dispatch(code, request.payload, close_after);
    reply.header.kind = static_cast<uint16_t>(code | kReplyBit);
    failed = false;
  } catch (const CommandError& e) {
    err = {e.code, e.what()};
  } catch (const DecodeError& e) {
    err = {ErrorCode::BadArgument, std::string(cmd_name(code) ? cmd_name(code) : "request") + ": " + e.what()};
  } catch (const StageFileError& e) {
    err = {ErrorCode::LoadFailed, e.what()};
  } catch (const LoraError& e) {
    err = {ErrorCode::BadArgument, e.what()};
  } catch (const std::invalid_argument& e) {
    // The model refusing what it was asked (e.g. a sequence longer than its sliding window): the request's fault.
    err = {ErrorCode::BadArgument, std::string(cmd_name(code) ? cmd_name(code) : "request") + ": " + e.what()};
  } catch (const std::bad_alloc&) {
    err = {ErrorCode::OutOfMemory, std::string(cmd_name(code) ? cmd_name(code) : "request") +
                                       ": the phone refused an allocation (out of memory): lower the memory budget "
                                       "or the micro-batch size"};
  } catch (const std::exception& e) {
    err = {ErrorCode::Internal, std::string(cmd_name(code) ? cmd_name(code) : "request") + ": " + e.what()};
  }
  if (failed) {
    reply.header.kind = kErrorKind;
    reply.payload = encode(err);
    if (error_closes_connection(err.code)) *close_after = true;
  }
  reply.header.payload_bytes = static_cast<uint32_t>(reply.payload.size());
  return reply;
}

std::vector<uint8_t> Session::dispatch(uint16_t code, const std::vector<uint8_t>& p, bool* close_after) {
  if (!authenticated_) {
    if (code != static_cast<uint16_t>(Cmd::Hello)) {
      const char* name = cmd_name(code);
      throw CommandError(ErrorCode::HandshakeRequired,
                         std::string("the first frame must be HELLO, got ") +
                             (name ? name : "unknown kind " + std::to_string(code)) + "; closing the connection");
    }
    return hello(p);
  }
  switch (static_cast<Cmd>(code)) {
    case Cmd::Hello: bad_argument("HELLO was already accepted on this connection");
    case Cmd::LoadStage: return load_stage(p);
    case Cmd::SetLora: return set_lora(p);
    case Cmd::Forward: return forward(p);
    case Cmd::Backward: return backward(p);
    case Cmd::GradNorm: return grad_norm(p);
    case Cmd::OptimStep: return optim_step(p);
    case Cmd::GetLora: return get_lora(p);
    case Cmd::Stats: return stats(p);
    case Cmd::Shutdown:
      decode_empty(p, "SHUTDOWN");
      *close_after = true;
      return empty_payload();
    case Cmd::ZeroGrad: return zero_grad(p);
    case Cmd::ZoForward: return zo_forward(p);
    case Cmd::ZoStep: return zo_step(p);
    case Cmd::Profile: return profile(p);
    case Cmd::SetSplit: return set_split(p);
    case Cmd::Nop: throw std::logic_error("NOP has no reply: the connection loop consumes it (server.cpp)");
  }
  throw CommandError(ErrorCode::UnknownCommand, "unknown command kind " + std::to_string(code) +
                                                    " (this agent speaks protocol " +
                                                    std::to_string(kProtocolVersion) + ")");
}

std::vector<uint8_t> Session::hello(const std::vector<uint8_t>& p) {
  // The version comes first and is checked before the rest is parsed: another version may lay HELLO out
  // differently, and its host deserves "version mismatch", not "bad argument".
  Reader r(p);
  const uint32_t version = r.u32();
  if (version != kProtocolVersion) {
    throw CommandError(ErrorCode::VersionMismatch, "host speaks protocol version " + std::to_string(version) +
                                                       ", this agent speaks " + std::to_string(kProtocolVersion) +
                                                       ": deploy the agent that matches the host");
  }
  const HelloRequest req = decode_hello_request(p);
  if (!constant_time_equal(req.token, opts_.token)) {
    throw CommandError(ErrorCode::AuthFailed, "session token does not match the agent's --token-file");
  }
  authenticated_ = true;
  HelloReply rep;
  rep.agent_version = kAgentVersion;
  rep.protocol_version = kProtocolVersion;
  rep.abi = opts_.abi;
  const unsigned hw = std::thread::hardware_concurrency();
  rep.cpu_threads = hw ? hw : 1;
  rep.memory_budget_bytes = budget_.limit_bytes();
  rep.backends = opts_.engine->describe();
  if (const Backend* secondary = opts_.engine->secondary()) rep.opencl_device_type = secondary->info().device_type;
  return encode(rep);
}

StageModel& Session::loaded(const char* cmd) {
  if (!model_) throw CommandError(ErrorCode::NotLoaded, std::string(cmd) + " needs a stage: send LOAD_STAGE first");
  return *model_;
}

uint64_t Session::committed_bytes() const {
  if (!model_) return 0;
  return model_->weight_bytes() + model_->lora().bytes() + model_->kept_activation_bytes() +
         model_->spare_activation_bytes();
}

std::vector<uint8_t> Session::load_stage(const std::vector<uint8_t>& p) {
  const LoadStageRequest req = decode_load_stage_request(p);
  if (req.target_mask & ~0x7Fu) bad_argument("LOAD_STAGE target_mask has unknown bits (only 0..6 are modules)");
  if (req.flags & ~(kLoadFlagTrainA | kLoadFlagRecompute)) {
    bad_argument("LOAD_STAGE flags has unknown bits (only bits 0 and 1 are defined)");
  }
  if (req.lora_rank == 0 && req.target_mask != 0) bad_argument("LOAD_STAGE lora_rank is 0 but target_mask is not");
  if (req.lora_rank > 4096) bad_argument("LOAD_STAGE lora_rank " + std::to_string(req.lora_rank) + " exceeds 4096");
  check_finite(req.lora_alpha, "LOAD_STAGE lora_alpha");

  std::unique_ptr<StageFile> file = StageFile::open(req.path);  // StageFileError -> LOAD_FAILED
  const StageConfig cfg = file->config();
  const bool train_a = req.flags & kLoadFlagTrainA;
  uint64_t widened = 0;
  for (const StageTensor& t : file->tensors()) {
    // Matrices are used in their stored format; only 1-D f16 tensors (norms, biases) get f32 copies.
    if (t.dtype == StageDType::F16 && t.dims.size() == 1) widened += t.nbytes * 2;
  }
  const uint64_t weights = file->tensor_bytes() + widened;
  const uint64_t lora = LoraSet::bytes_needed(cfg, req.lora_rank, req.target_mask, train_a);
  // The previous stage is replaced, so it does not count against the new one.
  const std::string refusal =
      budget_.check(weights + lora, "LOAD_STAGE of '" + req.path + "' (layers " + range_str(cfg.layer_start, cfg.layer_end) + ")",
                    "weights " + format_bytes(weights) + " + LoRA state " + format_bytes(lora));
  if (!refusal.empty()) throw CommandError(ErrorCode::OutOfMemory, refusal);

  model_.reset();
  model_ = std::make_unique<StageModel>(*opts_.engine, std::move(file),
                                        LoraSet(cfg, req.lora_rank, req.lora_alpha, req.target_mask, train_a));
  f16_micros_.clear();  // the new stage has no kept activations
  model_->set_recompute(req.flags & kLoadFlagRecompute);
  LoadStageReply rep;
  rep.layer_start = cfg.layer_start;
  rep.layer_end = cfg.layer_end;
  rep.stage_flags = cfg.flags;
  rep.weight_bytes = model_->weight_bytes();
  rep.lora_param_count = model_->lora().param_count();
  return encode(rep);
}

std::vector<uint8_t> Session::set_lora(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("SET_LORA");
  const SetLoraRequest req = decode_set_lora_request(p);
  m.lora().set(req.tensors);  // LoraError -> BAD_ARGUMENT
  return empty_payload();
}

std::vector<uint8_t> Session::forward(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("FORWARD");
  const ForwardRequest req = decode_forward_request(p);
  const StageConfig& c = m.config();
  if (req.flags & ~(kForwardKeepActivations | kForwardReturnLogits | kForwardRelayF16)) {
    bad_argument("FORWARD flags has unknown bits");
  }
  const bool keep = req.flags & kForwardKeepActivations;
  const bool relay_f16 = req.flags & kForwardRelayF16;
  const bool want_logits = req.flags & kForwardReturnLogits;
  if (want_logits && !m.last()) bad_argument("FORWARD asks for logits (flags bit 1) but this is not the last stage");

  const Tensor& in = req.input;
  uint32_t B = 0, T = 0;
  check_stage_input("FORWARD", m, in, &B, &T);
  if (req.has_targets) check_targets("FORWARD", m, req.targets, req.mask, B, T);

  // Budget: what stays resident plus this micro-batch's kept activations plus the larger of the forward and (when
  // training) the later backward scratch. A repeated micro_id replaces its old activations.
  int oldB = 0, oldT = 0;
  m.activation_shape(req.micro_id, &oldB, &oldT);
  const uint64_t replaced = keep && m.has_activations(req.micro_id) ? m.activation_bytes(oldB, oldT) : 0;
  // The spare activations become this micro-batch's (counted in acts) or are dropped.
  const uint64_t resident = committed_bytes() - replaced - m.spare_activation_bytes();
  const uint64_t acts = keep ? m.activation_bytes(int(B), int(T)) : 0;
  const uint64_t scratch_fwd = m.forward_scratch_bytes(int(B), int(T), keep);
  const uint64_t scratch_bwd = keep ? m.backward_scratch_bytes(int(B), int(T)) : 0;
  const uint64_t scratch = (scratch_fwd > scratch_bwd ? scratch_fwd : scratch_bwd) + widened_input_bytes(in);
  const std::string refusal = budget_.check(
      resident + acts + scratch,
      "FORWARD of micro-batch [" + std::to_string(B) + ", " + std::to_string(T) + "] (micro_id " +
          std::to_string(req.micro_id) + ")",
      "resident " + format_bytes(resident) + " + kept activations " + format_bytes(acts) + " + scratch " +
          format_bytes(scratch));
  if (!refusal.empty()) throw CommandError(ErrorCode::OutOfMemory, refusal);
  if (resident + acts + scratch > uint64_t(SIZE_MAX) / 2) {  // matters on 32-bit ABIs (armeabi-v7a)
    throw CommandError(ErrorCode::OutOfMemory, "FORWARD of micro-batch [" + std::to_string(B) + ", " +
                                                   std::to_string(T) + "] needs " +
                                                   format_bytes(resident + acts + scratch) +
                                                   ", more than this process can address");
  }

  ForwardArgs a;
  a.micro_id = req.micro_id;
  a.B = int(B);
  a.T = int(T);
  std::vector<float> widened;
  set_stage_input(m, in, &widened, &a);
  if (req.has_targets) {
    a.targets = req.targets.i32();
    a.mask = req.mask.f32();
  }
  a.keep = keep;
  a.want_logits = want_logits;
  ForwardResult res;
  {
    BusyTimer t(stats_, opts_.engine->secondary_time());
    res = m.forward(a);
  }
  ++stats_.forward_count;

  ForwardReply rep;
  if (m.last()) {
    rep.output_kind = 1;
    rep.loss_sum = res.loss_sum;
    rep.weight_sum = res.weight_sum;
    rep.has_logits = want_logits;
    if (want_logits) rep.logits = Tensor::make_f32({B, T, c.vocab_size}, res.logits.data());
  } else {
    rep.output_kind = 0;
    rep.hidden = relay_f16 ? make_f16({B, T, c.hidden_size}, res.hidden.data())
                           : Tensor::make_f32({B, T, c.hidden_size}, res.hidden.data());
  }
  // The micro-batch's BACKWARD answers in the dtype its FORWARD asked for (BACKWARD has no flags field).
  if (keep && relay_f16) f16_micros_.insert(req.micro_id);
  else f16_micros_.erase(req.micro_id);
  return encode(rep);
}

std::vector<uint8_t> Session::backward(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("BACKWARD");
  const BackwardRequest req = decode_backward_request(p);
  check_finite(req.loss_scale, "BACKWARD loss_scale");
  if (!m.has_activations(req.micro_id)) {
    bad_argument("BACKWARD micro_id " + std::to_string(req.micro_id) +
                 " has no kept activations: FORWARD it with flags bit 0 first (each BACKWARD releases them)");
  }
  int B = 0, T = 0;
  m.activation_shape(req.micro_id, &B, &T);
  const float* grad = nullptr;
  std::vector<float> widened_grad;  // f32 copy of an f16 grad_output
  if (m.last()) {
    if (req.has_grad) bad_argument("BACKWARD on the last stage starts from the loss: has_grad must be 0");
    if (!m.activations_have_targets(req.micro_id)) {
      bad_argument("BACKWARD micro_id " + std::to_string(req.micro_id) + " was forwarded without targets and mask");
    }
  } else {
    const std::vector<uint32_t> want{uint32_t(B), uint32_t(T), m.config().hidden_size};
    const bool dtype_ok = req.grad_output.dtype == DType::F32 || req.grad_output.dtype == DType::F16;
    if (!req.has_grad || !dtype_ok || req.grad_output.dims != want) {
      bad_argument("BACKWARD grad_output must be f32 (or f16) [" + std::to_string(B) + ", " + std::to_string(T) +
                   ", " + std::to_string(m.config().hidden_size) + "], got " +
                   (req.has_grad ? req.grad_output.shape_string() : std::string("none")));
    }
    grad = req.grad_output.dtype == DType::F16 ? widen_f16(req.grad_output, &widened_grad) : req.grad_output.f32();
  }
  std::vector<float> grad_in;
  {
    BusyTimer t(stats_, opts_.engine->secondary_time());
    grad_in = m.backward(req.micro_id, req.loss_scale, grad);
  }
  ++stats_.backward_count;
  const bool relay_f16 = f16_micros_.erase(req.micro_id) > 0;
  BackwardReply rep;
  rep.has_grad_input = !m.first();
  if (rep.has_grad_input) {
    const std::vector<uint32_t> dims{uint32_t(B), uint32_t(T), m.config().hidden_size};
    rep.grad_input = relay_f16 ? make_f16(dims, grad_in.data()) : Tensor::make_f32(dims, grad_in.data());
  }
  return encode(rep);
}

std::vector<uint8_t> Session::grad_norm(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("GRAD_NORM");
  decode_empty(p, "GRAD_NORM");
  return encode(GradNormReply{m.lora().grad_sum_squares()});
}

std::vector<uint8_t> Session::optim_step(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("OPTIM_STEP");
  const OptimStepRequest req = decode_optim_step_request(p);
  if (req.step < 1 || req.step > uint32_t(INT_MAX)) bad_argument("OPTIM_STEP step is 1-based and must be >= 1");
  check_finite(req.lr, "OPTIM_STEP lr");
  check_finite(req.beta1, "OPTIM_STEP beta1");
  check_finite(req.beta2, "OPTIM_STEP beta2");
  check_finite(req.eps, "OPTIM_STEP eps");
  check_finite(req.weight_decay, "OPTIM_STEP weight_decay");
  check_finite(req.grad_scale, "OPTIM_STEP grad_scale");
  BusyTimer t(stats_, opts_.engine->secondary_time());
  m.lora().optim_step(req);
  return empty_payload();
}

std::vector<uint8_t> Session::get_lora(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("GET_LORA");
  const GetLoraRequest req = decode_get_lora_request(p);
  if (req.flags & ~(kGetLoraWithGrads | kGetLoraWithMoments)) {
    bad_argument("GET_LORA flags has unknown bits (only bits 0 and 1 are defined)");
  }
  return encode(GetLoraReply{m.lora().get(req.flags & kGetLoraWithGrads, req.flags & kGetLoraWithMoments)});
}

std::vector<uint8_t> Session::stats(const std::vector<uint8_t>& p) {
  decode_empty(p, "STATS");
  const MemoryUsage mem = read_memory_usage();
  StatsReply rep;
  rep.rss_bytes = mem.rss_bytes;
  rep.peak_rss_bytes = mem.peak_rss_bytes;
  rep.busy_us = stats_.busy_us;
  rep.primary_busy_us = stats_.primary_busy_us;
  rep.secondary_busy_us = stats_.secondary_busy_us;
  rep.forward_count = stats_.forward_count;
  rep.backward_count = stats_.backward_count;
  rep.bytes_in = stats_.bytes_in;
  rep.bytes_out = stats_.bytes_out;
  if (const std::optional<Temperature> t = read_temperature(opts_.thermal_root)) {
    rep.has_temperature = true;
    rep.temperature_millicelsius = t->millicelsius;
    rep.temperature_zone = t->zone;
  }
  return encode(rep);
}

std::vector<uint8_t> Session::zero_grad(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("ZERO_GRAD");
  decode_empty(p, "ZERO_GRAD");
  m.lora().zero_grad();
  return empty_payload();
}

std::vector<uint8_t> Session::zo_forward(const std::vector<uint8_t>& p) {
  // What can be checked without a stage comes first: a malformed request is BAD_ARGUMENT in any state.
  const ZoForwardRequest req = decode_zo_forward_request(p);
  if (req.queries == 0 || req.queries > kMaxZoQueries) {
    bad_argument("ZO_FORWARD queries must be in [1, " + std::to_string(kMaxZoQueries) + "], got " +
                 std::to_string(req.queries));
  }
  if (uint64_t(req.first_query) + req.queries > kMaxZoQueries) {
    bad_argument("ZO_FORWARD queries [" + std::to_string(req.first_query) + ", " +
                 std::to_string(uint64_t(req.first_query) + req.queries) + ") reach past the " +
                 std::to_string(kMaxZoQueries) + " queries a step may have");
  }
  if (!std::isfinite(req.eps) || req.eps <= 0.0f) {
    bad_argument("ZO_FORWARD eps must be finite and > 0, got " + std::to_string(req.eps));
  }
  if (req.flags & ~kForwardRelayF16) bad_argument("ZO_FORWARD flags has unknown bits (only bit 2, f16 relay)");
  const uint64_t copies = 2 * uint64_t(req.queries);
  if (!req.input.dims.empty() && req.input.dims[0] % copies != 0) {
    bad_argument("ZO_FORWARD batch size " + std::to_string(req.input.dims[0]) + " is not a multiple of 2 * queries = " +
                 std::to_string(copies) + " (the batch holds a +eps and a -eps copy of the minibatch per query)");
  }
  StageModel& m = loaded("ZO_FORWARD");
  const StageConfig& c = m.config();
  const Tensor& in = req.input;
  uint32_t B = 0, T = 0;
  check_stage_input("ZO_FORWARD", m, in, &B, &T);
  if (B % copies != 0) {  // the early check above saw no dims; check_stage_input has made sure there are some
    bad_argument("ZO_FORWARD batch size " + std::to_string(B) + " is not a multiple of 2 * queries = " +
                 std::to_string(copies));
  }
  if (req.has_targets) {
    check_targets("ZO_FORWARD", m, req.targets, req.mask, B, T);
  } else if (m.last()) {
    bad_argument("ZO_FORWARD on the last stage needs targets and mask: its reply is the loss of every copy");
  }

  // Budget: what stays resident plus the forward scratch of the whole 2q-copy batch; nothing is kept.
  const uint64_t resident = committed_bytes();
  const uint64_t scratch = m.forward_scratch_bytes(int(B), int(T), false) + widened_input_bytes(in);
  const std::string what = "ZO_FORWARD of batch " + shape2(B, T) + " (" + std::to_string(copies) + " copies)";
  const std::string refusal =
      budget_.check(resident + scratch, what,
                    "resident " + format_bytes(resident) + " + scratch " + format_bytes(scratch));
  if (!refusal.empty()) throw CommandError(ErrorCode::OutOfMemory, refusal);
  if (resident + scratch > uint64_t(SIZE_MAX) / 2) {  // matters on 32-bit ABIs (armeabi-v7a)
    throw CommandError(ErrorCode::OutOfMemory,
                       what + " needs " + format_bytes(resident + scratch) + ", more than this process can address");
  }

  ZoPerturbation zo;
  zo.seed = req.seed;
  zo.step = req.step;
  zo.queries = req.queries;
  zo.first_query = req.first_query;
  zo.eps = req.eps;
  ForwardArgs a;
  a.B = int(B);
  a.T = int(T);
  std::vector<float> widened;
  set_stage_input(m, in, &widened, &a);
  if (req.has_targets) {
    a.targets = req.targets.i32();
    a.mask = req.mask.f32();
  }
  a.keep = false;
  a.want_logits = false;
  a.zo = &zo;
  ForwardResult res;
  {
    BusyTimer t(stats_, opts_.engine->secondary_time());
    res = m.forward(a);
  }
  ++stats_.forward_count;

  ZoForwardReply rep;
  if (m.last()) {
    if (res.copy_loss_sums.size() != copies || res.copy_weight_sums.size() != copies) {
      throw std::runtime_error("the stage returned " + std::to_string(res.copy_loss_sums.size()) + " loss sums and " +
                               std::to_string(res.copy_weight_sums.size()) + " weight sums for " +
                               std::to_string(copies) + " copies");
    }
    rep.output_kind = 1;
    rep.copy_loss_sums = std::move(res.copy_loss_sums);
    rep.copy_weight_sums = std::move(res.copy_weight_sums);
  } else {
    rep.output_kind = 0;
    rep.hidden = req.flags & kForwardRelayF16 ? make_f16({B, T, c.hidden_size}, res.hidden.data())
                                              : Tensor::make_f32({B, T, c.hidden_size}, res.hidden.data());
  }
  return encode(rep);
}

std::vector<uint8_t> Session::zo_step(const std::vector<uint8_t>& p) {
  const ZoStepRequest req = decode_zo_step_request(p);
  if (req.g.empty() || req.g.size() > kMaxZoQueries) {
    bad_argument("ZO_STEP g must hold one projected gradient per query, 1 to " + std::to_string(kMaxZoQueries) +
                 " values, got " + std::to_string(req.g.size()));
  }
  check_finite(req.lr, "ZO_STEP lr");
  for (size_t i = 0; i < req.g.size(); ++i) {
    if (!std::isfinite(req.g[i])) {
      bad_argument("ZO_STEP g[" + std::to_string(i) + "] is " + std::to_string(req.g[i]) +
                   ", must be finite (a perturbed loss was not finite: lower eps or the learning rate)");
    }
  }
  StageModel& m = loaded("ZO_STEP");
  BusyTimer t(stats_, opts_.engine->secondary_time());
  m.lora().zo_update(req.seed, req.step, req.g, req.lr);  // LoraError -> BAD_ARGUMENT
  return empty_payload();
}

std::vector<uint8_t> Session::profile(const std::vector<uint8_t>& p) {
  const ProfileRequestMsg req = decode_profile_request(p);
  if (req.batch == 0 || req.seq_len == 0 || uint64_t(req.batch) * req.seq_len > kMaxRows) {
    bad_argument("PROFILE shape " + shape2(req.batch, req.seq_len) + " must be non-empty with batch*seq_len <= " +
                 std::to_string(kMaxRows));
  }
  if (req.reps == 0 || req.reps > kMaxProfileReps) {
    bad_argument("PROFILE reps must be in [1, " + std::to_string(kMaxProfileReps) + "], got " +
                 std::to_string(req.reps));
  }
  StageModel& m = loaded("PROFILE");
  // Budget: as a training FORWARD of this shape (profiling runs forward and backward with kept activations).
  const int B = int(req.batch), T = int(req.seq_len);
  const uint64_t resident = committed_bytes();
  const uint64_t acts = m.activation_bytes(B, T);
  const uint64_t scratch_fwd = m.forward_scratch_bytes(B, T, true);
  const uint64_t scratch_bwd = m.backward_scratch_bytes(B, T);
  const uint64_t scratch = scratch_fwd > scratch_bwd ? scratch_fwd : scratch_bwd;
  const std::string what = "PROFILE of micro-batch " + shape2(req.batch, req.seq_len);
  const std::string refusal = budget_.check(resident + acts + scratch, what,
                                            "resident " + format_bytes(resident) + " + activations " +
                                                format_bytes(acts) + " + scratch " + format_bytes(scratch));
  if (!refusal.empty()) throw CommandError(ErrorCode::OutOfMemory, refusal);
  if (resident + acts + scratch > uint64_t(SIZE_MAX) / 2) {
    throw CommandError(ErrorCode::OutOfMemory, what + " needs " + format_bytes(resident + acts + scratch) +
                                                   ", more than this process can address");
  }
  ProfileRequest pr;
  pr.batch = req.batch;
  pr.seq_len = req.seq_len;
  pr.reps = req.reps;
  ProfileReply rep;
  rep.json = profile_stage(m, pr);
  if (rep.json.size() > kMaxStringBytes) {
    throw std::runtime_error("the profile is " + std::to_string(rep.json.size()) + " bytes of JSON, over the " +
                             std::to_string(kMaxStringBytes) + "-byte string limit");
  }
  return encode(rep);
}

std::vector<uint8_t> Session::set_split(const std::vector<uint8_t>& p) {
  const SetSplitRequest req = decode_set_split_request(p);
  StageModel& m = loaded("SET_SPLIT");
  const StageConfig& c = m.config();
  if (req.layers.size() != size_t(m.num_local_layers())) {
    bad_argument("SET_SPLIT has " + std::to_string(req.layers.size()) + " entries, this stage has " +
                 std::to_string(m.num_local_layers()) + " layers " + range_str(c.layer_start, c.layer_end) +
                 " (one entry per layer)");
  }
  if (m.kept_activation_bytes() > 0) {
    // Kept activations are laid out for the split they were computed under; BACKWARD must see the same one.
    bad_argument("SET_SPLIT while micro-batches have kept activations: BACKWARD them first (change the split "
                 "between steps)");
  }
  std::vector<LayerSplit> splits(req.layers.size());
  for (size_t i = 0; i < splits.size(); ++i) {
    splits[i].gpu_kv_groups = req.layers[i].gpu_kv_groups;
    splits[i].gpu_mlp_cols = req.layers[i].gpu_mlp_cols;
  }
  try {
    m.set_split(splits);
  } catch (const std::invalid_argument& e) {
    bad_argument(std::string("SET_SPLIT: ") + e.what());
  }
  return empty_payload();
}

}  // namespace confidant::agent
