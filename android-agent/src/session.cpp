// Handshake enforcement, command dispatch and the mapping of failures to protocol error codes
// (docs/protocol.md "Handshake", "Commands", "Error codes").
#include "session.h"

#include <climits>
#include <cstdint>
#include <cmath>
#include <new>
#include <thread>

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

void check_finite(float v, const char* what) {
  if (!std::isfinite(v)) bad_argument(std::string(what) + " must be finite");
}

std::vector<uint8_t> empty_payload() { return {}; }

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

Session::Session(SessionOptions opts) : opts_(std::move(opts)), budget_(opts_.memory_budget_bytes) {}
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
  rep.backends = kBackends;
  return encode(rep);
}

StageModel& Session::loaded(const char* cmd) {
  if (!model_) throw CommandError(ErrorCode::NotLoaded, std::string(cmd) + " needs a stage: send LOAD_STAGE first");
  return *model_;
}

uint64_t Session::committed_bytes() const {
  if (!model_) return 0;
  return model_->weight_bytes() + model_->lora().bytes() + model_->kept_activation_bytes();
}

std::vector<uint8_t> Session::load_stage(const std::vector<uint8_t>& p) {
  const LoadStageRequest req = decode_load_stage_request(p);
  if (req.target_mask & ~0x7Fu) bad_argument("LOAD_STAGE target_mask has unknown bits (only 0..6 are modules)");
  if (req.flags & ~kLoadFlagTrainA) bad_argument("LOAD_STAGE flags has unknown bits (only bit 0 is defined)");
  if (req.lora_rank == 0 && req.target_mask != 0) bad_argument("LOAD_STAGE lora_rank is 0 but target_mask is not");
  if (req.lora_rank > 4096) bad_argument("LOAD_STAGE lora_rank " + std::to_string(req.lora_rank) + " exceeds 4096");
  check_finite(req.lora_alpha, "LOAD_STAGE lora_alpha");

  std::unique_ptr<StageFile> file = StageFile::open(req.path);  // StageFileError -> LOAD_FAILED
  const StageConfig cfg = file->config();
  const bool train_a = req.flags & kLoadFlagTrainA;
  uint64_t widened = 0;
  for (const StageTensor& t : file->tensors()) {
    if (t.dtype == StageDType::F16) widened += t.nbytes * 2;
  }
  const uint64_t weights = file->tensor_bytes() + widened;
  const uint64_t lora = LoraSet::bytes_needed(cfg, req.lora_rank, req.target_mask, train_a);
  // The previous stage is replaced, so it does not count against the new one.
  const std::string refusal =
      budget_.check(weights + lora, "LOAD_STAGE of '" + req.path + "' (layers " + range_str(cfg.layer_start, cfg.layer_end) + ")",
                    "weights " + format_bytes(weights) + " + LoRA state " + format_bytes(lora));
  if (!refusal.empty()) throw CommandError(ErrorCode::OutOfMemory, refusal);

  model_.reset();
  model_ = std::make_unique<StageModel>(std::move(file),
                                        LoraSet(cfg, req.lora_rank, req.lora_alpha, req.target_mask, train_a));
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
  if (req.flags & ~(kForwardKeepActivations | kForwardReturnLogits)) bad_argument("FORWARD flags has unknown bits");
  const bool keep = req.flags & kForwardKeepActivations;
  const bool want_logits = req.flags & kForwardReturnLogits;
  if (want_logits && !m.last()) bad_argument("FORWARD asks for logits (flags bit 1) but this is not the last stage");

  const Tensor& in = req.input;
  uint32_t B = 0, T = 0;
  if (m.first()) {
    if (in.dtype != DType::I32 || in.dims.size() != 2) {
      bad_argument("FORWARD input on the first stage must be i32 [B, T] token ids, got " + in.shape_string());
    }
  } else if (in.dtype != DType::F32 || in.dims.size() != 3 || in.dims[2] != c.hidden_size) {
    bad_argument("FORWARD input must be f32 [B, T, " + std::to_string(c.hidden_size) + "] hidden states, got " +
                 in.shape_string());
  }
  B = in.dims[0];
  T = in.dims[1];
  if (B == 0 || T == 0 || uint64_t(B) * T > kMaxRows) {
    bad_argument("FORWARD batch [" + std::to_string(B) + ", " + std::to_string(T) + "] must be non-empty with B*T <= " +
                 std::to_string(kMaxRows));
  }
  const size_t N = size_t(B) * T;
  if (m.first()) {
    const int32_t* ids = in.i32();
    for (size_t i = 0; i < N; ++i) {
      if (ids[i] < 0 || uint32_t(ids[i]) >= c.vocab_size) {
        bad_argument("FORWARD token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                     " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
      }
    }
  }
  if (req.has_targets) {
    if (!m.last()) bad_argument("FORWARD has targets but this is not the last stage (targets go to the last only)");
    const std::vector<uint32_t> bt{B, T};
    if (req.targets.dtype != DType::I32 || req.targets.dims != bt) {
      bad_argument("FORWARD targets must be i32 [" + std::to_string(B) + ", " + std::to_string(T) + "], got " +
                   req.targets.shape_string());
    }
    if (req.mask.dtype != DType::F32 || req.mask.dims != bt) {
      bad_argument("FORWARD mask must be f32 [" + std::to_string(B) + ", " + std::to_string(T) + "], got " +
                   req.mask.shape_string());
    }
    const int32_t* tg = req.targets.i32();
    const float* mk = req.mask.f32();
    for (size_t i = 0; i < N; ++i) {
      if (!std::isfinite(mk[i])) bad_argument("FORWARD mask value at position " + std::to_string(i) + " is not finite");
      if (mk[i] != 0.0f && (tg[i] < 0 || uint32_t(tg[i]) >= c.vocab_size)) {
        bad_argument("FORWARD target " + std::to_string(tg[i]) + " at position " + std::to_string(i) +
                     " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
      }
    }
  }

  // Budget: what stays resident plus this micro-batch's kept activations plus the larger of the forward and (when
  // training) the later backward scratch. A repeated micro_id replaces its old activations.
  int oldB = 0, oldT = 0;
  m.activation_shape(req.micro_id, &oldB, &oldT);
  const uint64_t replaced = keep && m.has_activations(req.micro_id) ? m.activation_bytes(oldB, oldT) : 0;
  const uint64_t resident = committed_bytes() - replaced;
  const uint64_t acts = keep ? m.activation_bytes(int(B), int(T)) : 0;
  const uint64_t scratch_fwd = m.forward_scratch_bytes(int(B), int(T), keep);
  const uint64_t scratch_bwd = keep ? m.backward_scratch_bytes(int(B), int(T)) : 0;
  const uint64_t scratch = scratch_fwd > scratch_bwd ? scratch_fwd : scratch_bwd;
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
  if (m.first()) {
    a.tokens = in.i32();
  } else {
    a.hidden = in.f32();
  }
  if (req.has_targets) {
    a.targets = req.targets.i32();
    a.mask = req.mask.f32();
  }
  a.keep = keep;
  a.want_logits = want_logits;
  ForwardResult res;
  {
    BusyTimer t(&stats_.busy_us);
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
    rep.hidden = Tensor::make_f32({B, T, c.hidden_size}, res.hidden.data());
  }
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
  if (m.last()) {
    if (req.has_grad) bad_argument("BACKWARD on the last stage starts from the loss: has_grad must be 0");
    if (!m.activations_have_targets(req.micro_id)) {
      bad_argument("BACKWARD micro_id " + std::to_string(req.micro_id) + " was forwarded without targets and mask");
    }
  } else {
    const std::vector<uint32_t> want{uint32_t(B), uint32_t(T), m.config().hidden_size};
    if (!req.has_grad || req.grad_output.dtype != DType::F32 || req.grad_output.dims != want) {
      bad_argument("BACKWARD grad_output must be f32 [" + std::to_string(B) + ", " + std::to_string(T) + ", " +
                   std::to_string(m.config().hidden_size) + "], got " +
                   (req.has_grad ? req.grad_output.shape_string() : std::string("none")));
    }
    grad = req.grad_output.f32();
  }
  std::vector<float> grad_in;
  {
    BusyTimer t(&stats_.busy_us);
    grad_in = m.backward(req.micro_id, req.loss_scale, grad);
  }
  ++stats_.backward_count;
  BackwardReply rep;
  rep.has_grad_input = !m.first();
  if (rep.has_grad_input) {
    rep.grad_input = Tensor::make_f32({uint32_t(B), uint32_t(T), m.config().hidden_size}, grad_in.data());
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
  BusyTimer t(&stats_.busy_us);
  m.lora().optim_step(req);
  return empty_payload();
}

std::vector<uint8_t> Session::get_lora(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("GET_LORA");
  const GetLoraRequest req = decode_get_lora_request(p);
  if (req.flags & ~kGetLoraWithGrads) bad_argument("GET_LORA flags has unknown bits (only bit 0 is defined)");
  return encode(GetLoraReply{m.lora().get(req.flags & kGetLoraWithGrads)});
}

std::vector<uint8_t> Session::stats(const std::vector<uint8_t>& p) {
  decode_empty(p, "STATS");
  const MemoryUsage mem = read_memory_usage();
  StatsReply rep;
  rep.rss_bytes = mem.rss_bytes;
  rep.peak_rss_bytes = mem.peak_rss_bytes;
  rep.busy_us = stats_.busy_us;
  rep.forward_count = stats_.forward_count;
  rep.backward_count = stats_.backward_count;
  rep.bytes_in = stats_.bytes_in;
  rep.bytes_out = stats_.bytes_out;
  return encode(rep);
}

std::vector<uint8_t> Session::zero_grad(const std::vector<uint8_t>& p) {
  StageModel& m = loaded("ZERO_GRAD");
  decode_empty(p, "ZERO_GRAD");
  m.lora().zero_grad();
  return empty_payload();
}

}  // namespace confidant::agent
