// Split equals whole (ARCHITECTURE.md): stages [0,2) + [2,5) chained in-process through the protocol must give
// the loss and every LoRA gradient of the single stage [0,5), with identical non-zero adapters and two
// interleaved micro-batches. Also: LoRA gradients against central finite differences, LoRA-FA training,
// zero-B adapters change nothing, the memory budget refusals and argument errors of the stage commands.
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "check.h"
#include "confidant/half.h"
#include "json_mini.h"
#include "session_client.h"

using namespace confidant::agent;
using agent_test::call;

namespace {

const std::string kData = AGENT_TEST_DATA;
constexpr int kB = 2, kT = 16;
constexpr uint32_t kRank = 4;
constexpr float kAlpha = 8.0f;
constexpr uint32_t kAllModules = 0x7F;

std::unique_ptr<Session> open_stage(const std::string& file, uint32_t flags, uint64_t budget = 0,
                                    uint32_t rank = kRank, uint32_t mask = kAllModules) {
  auto s = std::make_unique<Session>(SessionOptions{"test-token", budget, "x86_64", &agent_test::test_engine()});
  CALL_OK(*s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "test-token"}));
  LoadStageRequest ls;
  ls.path = kData + "/" + file;
  ls.lora_rank = rank;
  ls.lora_alpha = kAlpha;
  ls.target_mask = mask;
  ls.flags = flags;
  CALL_OK(*s, Cmd::LoadStage, encode(ls));
  return s;
}

uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// Deterministic, non-zero adapter values that depend on the tensor's global name (so a split stage and the whole
// model get the same adapter for the same layer).
std::vector<NamedTensor> deterministic_lora(Session& s) {
  GetLoraReply cur = decode_get_lora_reply(CALL_OK(s, Cmd::GetLora, encode(GetLoraRequest{0})));
  for (NamedTensor& nt : cur.tensors) {
    const uint32_t h = fnv1a(nt.name);
    float* v = nt.tensor.f32();
    const size_t n = nt.tensor.elements();
    const bool is_b = nt.name.find("lora_B") != std::string::npos;
    for (size_t i = 0; i < n; ++i) {
      v[i] = (is_b ? 0.05f : 0.2f) * std::sin(0.37f * float(i) + float(h % 1000) * 0.01f);
    }
  }
  return cur.tensors;
}

struct MicroBatch {
  Tensor tokens, targets, mask;
};

MicroBatch make_batch(int seed) {
  std::vector<int32_t> tok(kB * kT), tgt(kB * kT);
  std::vector<float> mask(kB * kT);
  uint32_t x = 12345u + 977u * seed;
  for (int i = 0; i < kB * kT; ++i) {
    x = x * 1664525u + 1013904223u;
    tok[i] = static_cast<int32_t>(3 + (x >> 8) % 509);
  }
  for (int b = 0; b < kB; ++b) {
    for (int t = 0; t < kT; ++t) {
      const int i = b * kT + t;
      tgt[i] = t + 1 < kT ? tok[i + 1] : 2;
      mask[i] = (t < 2 + b || i % 7 == 3) ? 0.0f : (i % 5 == 0 ? 0.5f : 1.0f);
    }
  }
  tgt[5] = -7;  // a masked position may carry any target, even out of range
  mask[5] = 0.0f;
  MicroBatch m;
  m.tokens = Tensor::make_i32({kB, kT}, tok.data());
  m.targets = Tensor::make_i32({kB, kT}, tgt.data());
  m.mask = Tensor::make_f32({kB, kT}, mask.data());
  return m;
}

ForwardReply forward(Session& s, uint32_t micro, uint32_t flags, const Tensor& input, const MicroBatch* targets) {
  ForwardRequest f;
  f.micro_id = micro;
  f.flags = flags;
  f.input = input;
  if (targets) {
    f.has_targets = true;
    f.targets = targets->targets;
    f.mask = targets->mask;
  }
  return decode_forward_reply(CALL_OK(s, Cmd::Forward, encode(f)));
}

BackwardReply backward(Session& s, uint32_t micro, float scale, const Tensor* grad) {
  BackwardRequest b;
  b.micro_id = micro;
  b.loss_scale = scale;
  b.has_grad = grad != nullptr;
  if (grad) b.grad_output = *grad;
  return decode_backward_reply(CALL_OK(s, Cmd::Backward, encode(b)));
}

std::map<std::string, Tensor> lora_map(Session& s, bool grads) {
  std::map<std::string, Tensor> m;
  for (NamedTensor& nt : decode_get_lora_reply(CALL_OK(s, Cmd::GetLora, encode(GetLoraRequest{grads ? 1u : 0u}))).tensors) {
    m[nt.name] = std::move(nt.tensor);
  }
  return m;
}

double grad_norm(Session& s) { return decode_grad_norm_reply(CALL_OK(s, Cmd::GradNorm, {})).sum_squares; }

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(a), std::fabs(b)); }

// max|a-b| / max|a|
double max_abs_rel(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.elements(); ++i) {
    diff = std::max(diff, double(std::fabs(a.f32()[i] - b.f32()[i])));
    scale = std::max(scale, double(std::fabs(a.f32()[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

void test_split_equals_whole() {
  const MicroBatch mb[2] = {make_batch(0), make_batch(1)};
  auto whole = open_stage("whole.stage", kLoadFlagTrainA);
  auto first = open_stage("first.stage", kLoadFlagTrainA);
  auto last = open_stage("last.stage", kLoadFlagTrainA);
  const auto lora_whole = deterministic_lora(*whole);
  CALL_OK(*whole, Cmd::SetLora, encode(SetLoraRequest{lora_whole}));
  CALL_OK(*first, Cmd::SetLora, encode(SetLoraRequest{deterministic_lora(*first)}));
  CALL_OK(*last, Cmd::SetLora, encode(SetLoraRequest{deterministic_lora(*last)}));

  // Whole: two micro-batches forwarded, then both backwarded (gradients accumulate).
  double w_loss = 0, w_weight = 0;
  for (uint32_t m = 0; m < 2; ++m) {
    const ForwardReply r = forward(*whole, m, kForwardKeepActivations, mb[m].tokens, &mb[m]);
    CHECK_EQ(r.output_kind, 1);
    w_loss += r.loss_sum;
    w_weight += r.weight_sum;
  }
  const float scale = float(1.0 / w_weight);
  for (uint32_t m = 0; m < 2; ++m) CHECK(!backward(*whole, m, scale, nullptr).has_grad_input);

  // Split, 1F1B-like interleaving: F0 F1 on both stages, then B0 and B1 back through last -> first.
  double s_loss = 0, s_weight = 0;
  for (uint32_t m = 0; m < 2; ++m) {
    const ForwardReply h = forward(*first, m, kForwardKeepActivations, mb[m].tokens, nullptr);
    CHECK_EQ(h.output_kind, 0);
    CHECK(h.hidden.dims == (std::vector<uint32_t>{kB, kT, 64}));
    const ForwardReply r = forward(*last, m, kForwardKeepActivations, h.hidden, &mb[m]);
    s_loss += r.loss_sum;
    s_weight += r.weight_sum;
  }
  for (uint32_t m = 0; m < 2; ++m) {
    const BackwardReply g = backward(*last, m, scale, nullptr);
    CHECK(g.has_grad_input && g.grad_input.dims == (std::vector<uint32_t>{kB, kT, 64}));
    CHECK(!backward(*first, m, 1.0f, &g.grad_input).has_grad_input);
  }
  CHECK(w_weight == s_weight);
  CHECK_MSG(rel(w_loss, s_loss) < 1e-5, "loss whole " + std::to_string(w_loss) + " split " + std::to_string(s_loss));

  const auto gw = lora_map(*whole, true), g1 = lora_map(*first, true), g2 = lora_map(*last, true);
  CHECK_EQ(gw.size(), g1.size() + g2.size());
  CHECK_EQ(gw.size(), 5u * 7 * 4);  // 5 layers x 7 modules x (A, A.grad, B, B.grad)
  double worst = 0;
  std::string worst_name;
  size_t nonzero_grads = 0;
  for (const auto& kv : gw) {
    const auto& other = g1.count(kv.first) ? g1 : g2;
    auto it = other.find(kv.first);
    if (it == other.end()) {
      agent_test::fail(__FILE__, __LINE__, kv.first + " missing from the split stages");
      continue;
    }
    CHECK(it->second.dims == kv.second.dims);
    const double d = max_abs_rel(kv.second, it->second);
    if (d > worst) worst = d, worst_name = kv.first;
    CHECK_MSG(d <= 1e-5, kv.first + ": max-abs-normalised difference " + std::to_string(d));
    if (kv.first.find(".grad") != std::string::npos) {
      bool any = false;
      for (size_t i = 0; i < kv.second.elements(); ++i) any = any || kv.second.f32()[i] != 0.0f;
      nonzero_grads += any;
    }
  }
  CHECK_EQ(nonzero_grads, 5u * 7 * 2);  // every A and B gradient is non-zero (the test can fail)
  const double nw = grad_norm(*whole), n1 = grad_norm(*first), n2 = grad_norm(*last);
  CHECK_MSG(rel(nw, n1 + n2) < 1e-5, "grad norm^2 whole " + std::to_string(nw) + " split " + std::to_string(n1 + n2));
  std::printf("split == whole: loss %.9g vs %.9g (rel %.2e), worst LoRA tensor rel diff %.2e (%s), |g|^2 %.6g\n",
              w_loss, s_loss, rel(w_loss, s_loss), worst, worst_name.c_str(), nw);

  // Gradients against central finite differences of the step's mean loss, at the largest-gradient entry of a
  // few tensors across layers and modules (A and B).
  const char* probes[] = {"model.layers.0.self_attn.q_proj.lora_A", "model.layers.1.mlp.gate_proj.lora_B",
                          "model.layers.2.self_attn.v_proj.lora_B", "model.layers.3.self_attn.o_proj.lora_A",
                          "model.layers.4.mlp.down_proj.lora_B", "model.layers.4.self_attn.k_proj.lora_A"};
  for (const char* name : probes) {
    const Tensor& g = gw.at(std::string(name) + ".grad");
    size_t idx = 0;
    for (size_t i = 0; i < g.elements(); ++i) {
      if (std::fabs(g.f32()[i]) > std::fabs(g.f32()[idx])) idx = i;
    }
    const double eps = 1e-2;
    double L[2];
    for (int sgn = 0; sgn < 2; ++sgn) {
      std::vector<NamedTensor> l = lora_whole;
      for (NamedTensor& nt : l) {
        if (nt.name == name) nt.tensor.f32()[idx] += float(sgn ? -eps : eps);
      }
      CALL_OK(*whole, Cmd::SetLora, encode(SetLoraRequest{l}));
      double sum = 0;
      for (uint32_t m = 0; m < 2; ++m) sum += forward(*whole, m, 0, mb[m].tokens, &mb[m]).loss_sum;
      L[sgn] = sum / w_weight;
    }
    const double fd = (L[0] - L[1]) / (2 * eps), an = g.f32()[idx];
    CHECK_MSG(std::fabs(fd - an) <= 0.02 * std::fabs(an) + 1e-6,
              std::string(name) + ": analytic " + std::to_string(an) + " vs finite difference " + std::to_string(fd));
    std::printf("  d/d %s[%zu]: analytic %.6e, finite difference %.6e\n", name, idx, an, fd);
  }
}

void test_lora_fa_training_and_zero_b() {
  const MicroBatch mb = make_batch(2);
  // Zero adapters (B = 0 after LOAD_STAGE) change nothing: logits equal those of a stage without LoRA.
  auto plain = open_stage("whole.stage", 0, 0, 0, 0);
  auto fa = open_stage("whole.stage", 0);
  const ForwardReply a = forward(*plain, 0, kForwardReturnLogits, mb.tokens, &mb);
  const ForwardReply b = forward(*fa, 0, kForwardReturnLogits, mb.tokens, &mb);
  CHECK(a.has_logits && a.logits.dims == (std::vector<uint32_t>{kB, kT, 512}));
  CHECK(a.logits.data == b.logits.data && a.loss_sum == b.loss_sum);
  CHECK(decode_get_lora_reply(CALL_OK(*plain, Cmd::GetLora, encode(GetLoraRequest{1}))).tensors.empty());

  // LoRA-FA: A frozen (no A.grad, unchanged by OPTIM_STEP), B trained; the loss on the batch goes down.
  std::vector<NamedTensor> init = deterministic_lora(*fa);
  CALL_OK(*fa, Cmd::SetLora, encode(SetLoraRequest{init}));
  const GetLoraReply names = decode_get_lora_reply(CALL_OK(*fa, Cmd::GetLora, encode(GetLoraRequest{1})));
  CHECK_EQ(names.tensors.size(), 5u * 7 * 3);
  CHECK(names.tensors[0].name == "model.layers.0.self_attn.q_proj.lora_A");
  CHECK(names.tensors[1].name == "model.layers.0.self_attn.q_proj.lora_B");
  CHECK(names.tensors[2].name == "model.layers.0.self_attn.q_proj.lora_B.grad");
  CHECK(names.tensors[3].name == "model.layers.0.self_attn.k_proj.lora_A");
  CHECK(names.tensors[20].name == "model.layers.0.mlp.down_proj.lora_B.grad");
  CHECK(names.tensors[21].name == "model.layers.1.self_attn.q_proj.lora_A");
  CHECK(names.tensors[18].name == "model.layers.0.mlp.down_proj.lora_A");
  CHECK(names.tensors[0].tensor.dims == (std::vector<uint32_t>{kRank, 64}));
  CHECK(names.tensors[1].tensor.dims == (std::vector<uint32_t>{64, kRank}));
  CHECK(names.tensors[19].tensor.dims == (std::vector<uint32_t>{64, kRank}));
  CHECK(names.tensors[18].tensor.dims == (std::vector<uint32_t>{kRank, 172}));
  double first_loss = 0, loss = 0;
  for (uint32_t step = 1; step <= 8; ++step) {
    const ForwardReply r = forward(*fa, 7, kForwardKeepActivations, mb.tokens, &mb);
    loss = r.loss_sum / r.weight_sum;
    if (step == 1) first_loss = loss;
    backward(*fa, 7, float(1.0 / r.weight_sum), nullptr);
    CHECK(grad_norm(*fa) > 0);
    OptimStepRequest o;
    o.step = step;
    o.lr = 1e-2f;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    o.weight_decay = 0.0f;
    o.grad_scale = 1.0f;
    CALL_OK(*fa, Cmd::OptimStep, encode(o));
    CHECK(grad_norm(*fa) == 0);  // OPTIM_STEP zeroes the gradients
  }
  CHECK_MSG(loss < first_loss - 0.05, "loss " + std::to_string(first_loss) + " -> " + std::to_string(loss));
  std::printf("LoRA-FA, 8 AdamW steps on one batch: mean loss %.4f -> %.4f\n", first_loss, loss);
  const auto after = lora_map(*fa, false);
  for (const NamedTensor& nt : init) {
    const bool is_a = nt.name.find("lora_A") != std::string::npos;
    CHECK_MSG(is_a == (after.at(nt.name).data == nt.tensor.data), nt.name + (is_a ? " changed" : " did not change"));
  }
  // ZERO_GRAD clears accumulated gradients.
  forward(*fa, 1, kForwardKeepActivations, mb.tokens, &mb);
  backward(*fa, 1, 1.0f, nullptr);
  CHECK(grad_norm(*fa) > 0);
  CALL_OK(*fa, Cmd::ZeroGrad, {});
  CHECK(grad_norm(*fa) == 0);
}

void expect_error(Session& s, Cmd cmd, const std::vector<uint8_t>& payload, ErrorCode code, const std::string& needle,
                  int line) {
  const agent_test::Reply r = call(s, cmd, payload);
  if (!r.is_error()) {
    agent_test::fail(__FILE__, line, std::string("expected ") + error_name(code) + ", got a reply");
    return;
  }
  const ErrorReply e = r.error();
  if (e.code != code || !agent_test::contains(e.message, needle)) {
    agent_test::fail(__FILE__, line, std::string("expected ") + error_name(code) + " with '" + needle + "', got " +
                                         error_name(e.code) + ": " + e.message);
  }
  if (r.close != error_closes_connection(code)) agent_test::fail(__FILE__, line, "wrong close-after decision");
}
#define EXPECT_ERROR(s, cmd, payload, code, needle) expect_error(s, cmd, payload, code, needle, __LINE__)

void test_budget_and_arguments() {
  // Memory budget: the whole stage (~1016 KiB of weights) does not fit in 512 KiB.
  {
    Session s(SessionOptions{"t", 512 * 1024, "x86_64", &agent_test::test_engine()});
    CALL_OK(s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "t"}));
    LoadStageRequest ls{kData + "/whole.stage", kRank, kAlpha, kAllModules, 0};
    EXPECT_ERROR(s, Cmd::LoadStage, encode(ls), ErrorCode::OutOfMemory, "the memory budget is 512.0 KiB");
    EXPECT_ERROR(s, Cmd::LoadStage, encode(ls), ErrorCode::OutOfMemory, "whole.stage");
    EXPECT_ERROR(s, Cmd::GradNorm, {}, ErrorCode::NotLoaded, "LOAD_STAGE");
  }
  {
    auto s = open_stage("whole.stage", 0, 2u << 20);  // 2 MiB: the stage fits, a large micro-batch does not
    EXPECT_ERROR(*s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "test-token"}), ErrorCode::BadArgument,
                 "already");
    std::vector<int32_t> ids(8 * 512, 1);
    ForwardRequest f;
    f.flags = kForwardKeepActivations;
    f.input = Tensor::make_i32({8, 512}, ids.data());
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::OutOfMemory, "FORWARD of micro-batch [8, 512]");
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::OutOfMemory, "the memory budget is 2.0 MiB");
    f.input = Tensor::make_i32({1, 4}, ids.data());
    CALL_OK(*s, Cmd::Forward, encode(f));
  }
  // Argument errors keep the connection open and name what is wrong.
  {
    auto s = open_stage("whole.stage", kLoadFlagTrainA);
    const MicroBatch mb = make_batch(3);
    int32_t bad_ids[4] = {1, 600, 3, 4};
    ForwardRequest f;
    f.input = Tensor::make_i32({1, 4}, bad_ids);
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::BadArgument, "token id 600 at position 1");
    std::vector<float> h(4 * 64, 0.0f);
    f.input = Tensor::make_f32({1, 4, 64}, h.data());
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::BadArgument, "i32 [B, T] token ids");
    f.input = mb.tokens;
    f.has_targets = true;
    f.targets = Tensor::make_i32({1, 4}, bad_ids);
    f.mask = mb.mask;
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::BadArgument, "targets must be i32 [2, 16]");
    f.targets = mb.targets;
    reinterpret_cast<int32_t*>(f.targets.data.data())[0] = 512;
    reinterpret_cast<float*>(f.mask.data.data())[0] = 1.0f;
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::BadArgument, "target 512 at position 0");
    f.flags = 0x8;  // bits 0..2 are defined (2: f16 relay)
    EXPECT_ERROR(*s, Cmd::Forward, encode(f), ErrorCode::BadArgument, "unknown bits");
    BackwardRequest b{99, 1.0f, false, Tensor()};
    EXPECT_ERROR(*s, Cmd::Backward, encode(b), ErrorCode::BadArgument, "micro_id 99 has no kept activations");
    forward(*s, 4, kForwardKeepActivations, mb.tokens, nullptr);
    b.micro_id = 4;
    EXPECT_ERROR(*s, Cmd::Backward, encode(b), ErrorCode::BadArgument, "without targets");

    std::vector<NamedTensor> l = deterministic_lora(*s);
    std::vector<NamedTensor> missing(l.begin() + 1, l.end());
    EXPECT_ERROR(*s, Cmd::SetLora, encode(SetLoraRequest{missing}), ErrorCode::BadArgument,
                 "'model.layers.0.self_attn.q_proj.lora_A' is missing");
    std::vector<NamedTensor> shaped = l;
    shaped[0].tensor.dims = {2, 128};
    EXPECT_ERROR(*s, Cmd::SetLora, encode(SetLoraRequest{shaped}), ErrorCode::BadArgument, "expected f32 [4, 64]");
    std::vector<NamedTensor> extra = l;
    extra.push_back({"model.layers.9.self_attn.q_proj.lora_A", l[0].tensor});
    EXPECT_ERROR(*s, Cmd::SetLora, encode(SetLoraRequest{extra}), ErrorCode::BadArgument, "not a LoRA tensor");
    std::vector<NamedTensor> half_moments = l;  // AdamW moments come in pairs (checkpoint restore)
    half_moments.push_back({l[1].name + ".adam_m", l[1].tensor});
    EXPECT_ERROR(*s, Cmd::SetLora, encode(SetLoraRequest{half_moments}), ErrorCode::BadArgument, "only one of .adam_m");
    EXPECT_ERROR(*s, Cmd::GetLora, encode(GetLoraRequest{4}), ErrorCode::BadArgument, "unknown bits");
    OptimStepRequest o;
    o.step = 0;
    EXPECT_ERROR(*s, Cmd::OptimStep, encode(o), ErrorCode::BadArgument, "1-based");
    EXPECT_ERROR(*s, static_cast<Cmd>(0x0042), {}, ErrorCode::UnknownCommand, "unknown command kind 66");
    EXPECT_ERROR(*s, static_cast<Cmd>(0x8001), {}, ErrorCode::UnknownCommand, "unknown command");
    EXPECT_ERROR(*s, Cmd::Stats, {1}, ErrorCode::BadArgument, "trailing");
    LoadStageRequest ls{kData + "/whole.stage", kRank, kAlpha, 0x80, 0};
    EXPECT_ERROR(*s, Cmd::LoadStage, encode(ls), ErrorCode::BadArgument, "target_mask");
    ls = LoadStageRequest{kData + "/no-such.stage", kRank, kAlpha, kAllModules, 0};
    EXPECT_ERROR(*s, Cmd::LoadStage, encode(ls), ErrorCode::LoadFailed, "no-such.stage");
    CALL_OK(*s, Cmd::GradNorm, {});  // a failed LOAD_STAGE leaves the previous stage loaded
  }
  // Stage-position rules: targets and logits belong to the last stage, token ids to the first.
  {
    auto first = open_stage("first.stage", 0);
    const MicroBatch mb = make_batch(4);
    ForwardRequest f;
    f.input = mb.tokens;
    f.has_targets = true;
    f.targets = mb.targets;
    f.mask = mb.mask;
    EXPECT_ERROR(*first, Cmd::Forward, encode(f), ErrorCode::BadArgument, "not the last stage");
    f.has_targets = false;
    f.flags = kForwardReturnLogits;
    EXPECT_ERROR(*first, Cmd::Forward, encode(f), ErrorCode::BadArgument, "logits");
    auto last = open_stage("last.stage", 0);
    f.flags = 0;
    EXPECT_ERROR(*last, Cmd::Forward, encode(f), ErrorCode::BadArgument, "f32 [B, T, 64] hidden states");
    std::vector<float> h(kB * kT * 64, 0.01f);
    f.input = Tensor::make_f32({kB, kT, 64}, h.data());
    f.flags = kForwardKeepActivations;
    f.has_targets = true;
    CALL_OK(*last, Cmd::Forward, encode(f));
    BackwardRequest b{0, 1.0f, true, f.input};
    EXPECT_ERROR(*last, Cmd::Backward, encode(b), ErrorCode::BadArgument, "has_grad must be 0");
  }
}

// ZO_FORWARD, ZO_STEP, PROFILE and SET_SPLIT through the session: what is refused before any stage is loaded,
// the shared malformed fixtures, then the replies and refusals with a stage (the P-RGE maths itself is pinned by
// test_prge_batched / test_prge_update, the split by test_layer_split).
ZoForwardRequest zo_request(uint32_t q, float eps, const Tensor& input, const MicroBatch* targets) {
  ZoForwardRequest z;
  z.seed = 0x0123456789ABCDEFull;
  z.step = 7;
  z.queries = q;
  z.eps = eps;
  z.input = input;
  if (targets) {
    z.has_targets = true;
    z.targets = targets->targets;
    z.mask = targets->mask;
  }
  return z;
}

// Row r of every tensor of mb, repeated n times: a batch of n identical copies of one sequence.
MicroBatch repeat_row(const MicroBatch& mb, int r, int n) {
  std::vector<int32_t> tok, tgt;
  std::vector<float> mask;
  for (int c = 0; c < n; ++c) {
    for (int t = 0; t < kT; ++t) {
      tok.push_back(reinterpret_cast<const int32_t*>(mb.tokens.data.data())[r * kT + t]);
      tgt.push_back(reinterpret_cast<const int32_t*>(mb.targets.data.data())[r * kT + t]);
      mask.push_back(mb.mask.f32()[r * kT + t]);
    }
  }
  MicroBatch out;
  out.tokens = Tensor::make_i32({uint32_t(n), kT}, tok.data());
  out.targets = Tensor::make_i32({uint32_t(n), kT}, tgt.data());
  out.mask = Tensor::make_f32({uint32_t(n), kT}, mask.data());
  return out;
}

Tensor to_f16(const Tensor& t) {
  Tensor h;
  h.dtype = DType::F16;
  h.dims = t.dims;
  h.data.resize(t.elements() * 2);
  for (size_t i = 0; i < t.elements(); ++i) {
    const uint16_t b = confidant::float_to_half(t.f32()[i]);
    std::memcpy(h.data.data() + 2 * i, &b, 2);
  }
  return h;
}

Tensor widen(const Tensor& h) {
  std::vector<float> v(h.elements());
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t b;
    std::memcpy(&b, h.data.data() + 2 * i, 2);
    v[i] = confidant::half_to_float(b);
  }
  return Tensor::make_f32(h.dims, v.data());
}

void test_zo_profile_split_without_stage() {
  Session s(SessionOptions{"t", 0, "x86_64", &agent_test::test_engine()});
  const HelloReply hello = decode_hello_reply(CALL_OK(s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "t"})));
  CHECK_MSG(hello.backends == agent_test::test_engine().describe(), "HELLO backends: " + hello.backends);
  std::vector<int32_t> ids(4 * kT, 5);
  const Tensor tokens = Tensor::make_i32({4, kT}, ids.data());
  EXPECT_ERROR(s, Cmd::ZoForward, encode(zo_request(0, 1e-3f, tokens, nullptr)), ErrorCode::BadArgument,
               "queries must be in [1, 1024], got 0");
  EXPECT_ERROR(s, Cmd::ZoForward, encode(zo_request(1025, 1e-3f, tokens, nullptr)), ErrorCode::BadArgument,
               "queries must be in [1, 1024]");
  ZoForwardRequest past = zo_request(2, 1e-3f, tokens, nullptr);
  past.first_query = 1023;
  EXPECT_ERROR(s, Cmd::ZoForward, encode(past), ErrorCode::BadArgument,
               "queries [1023, 1025) reach past the 1024 queries a step may have");
  EXPECT_ERROR(s, Cmd::ZoForward, encode(zo_request(1, NAN, tokens, nullptr)), ErrorCode::BadArgument,
               "eps must be finite and > 0");
  EXPECT_ERROR(s, Cmd::ZoForward, encode(zo_request(1, 0.0f, tokens, nullptr)), ErrorCode::BadArgument,
               "eps must be finite and > 0");
  EXPECT_ERROR(s, Cmd::ZoForward, encode(zo_request(3, 1e-3f, tokens, nullptr)), ErrorCode::BadArgument,
               "batch size 4 is not a multiple of 2 * queries = 6");
  EXPECT_ERROR(s, Cmd::ZoForward, encode(zo_request(2, 1e-3f, tokens, nullptr)), ErrorCode::NotLoaded, "LOAD_STAGE");

  ZoStepRequest st{1, 2, 1e-3f, {}};
  EXPECT_ERROR(s, Cmd::ZoStep, encode(st), ErrorCode::BadArgument, "one projected gradient per query, 1 to 1024");
  st.g = {0.5f, NAN};
  EXPECT_ERROR(s, Cmd::ZoStep, encode(st), ErrorCode::BadArgument, "ZO_STEP g[1] is nan");
  st.g = {0.5f};
  st.lr = INFINITY;
  EXPECT_ERROR(s, Cmd::ZoStep, encode(st), ErrorCode::BadArgument, "ZO_STEP lr must be finite");
  st.lr = 1e-3f;
  EXPECT_ERROR(s, Cmd::ZoStep, encode(st), ErrorCode::NotLoaded, "ZO_STEP needs a stage");

  EXPECT_ERROR(s, Cmd::Profile, encode(ProfileRequestMsg{0, 8, 1}), ErrorCode::BadArgument, "PROFILE shape [0, 8]");
  EXPECT_ERROR(s, Cmd::Profile, encode(ProfileRequestMsg{1u << 13, 1u << 12, 1}), ErrorCode::BadArgument,
               "batch*seq_len <= 16777216");
  EXPECT_ERROR(s, Cmd::Profile, encode(ProfileRequestMsg{1, 8, 0}), ErrorCode::BadArgument, "reps must be in [1, 100]");
  EXPECT_ERROR(s, Cmd::Profile, encode(ProfileRequestMsg{1, 8, 101}), ErrorCode::BadArgument, "got 101");
  EXPECT_ERROR(s, Cmd::Profile, encode(ProfileRequestMsg{1, 8, 1}), ErrorCode::NotLoaded, "PROFILE");
  EXPECT_ERROR(s, Cmd::SetSplit, encode(SetSplitRequest{{{0, 0}}}), ErrorCode::NotLoaded, "SET_SPLIT");

  // The malformed request fixtures of the independent encoder are BAD_ARGUMENT, and the connection stays open.
  const std::string dir = std::string(REPO_SOURCE_DIR) + "/test/fixtures/protocol/";
  const std::pair<const char*, Cmd> bad[] = {{"zo_forward_request_malformed", Cmd::ZoForward},
                                             {"zo_step_request_malformed", Cmd::ZoStep},
                                             {"profile_request_malformed", Cmd::Profile},
                                             {"set_split_request_malformed", Cmd::SetSplit}};
  for (const auto& [name, cmd] : bad) {
    const std::vector<uint8_t> bin = agent_test::read_file(dir + name + ".bin");
    CHECK_MSG(bin.size() > kFrameHeaderBytes, std::string("missing fixture ") + name);
    if (bin.size() <= kFrameHeaderBytes) continue;
    EXPECT_ERROR(s, cmd, std::vector<uint8_t>(bin.begin() + kFrameHeaderBytes, bin.end()), ErrorCode::BadArgument,
                 cmd_name(uint16_t(cmd)));
  }
}

void test_zo_profile_split_with_stage() {
  const MicroBatch mb = make_batch(11);
  // Whole model, q = 1: two copies of row 1. Their weight sums are the row's, their mean loss the unperturbed one.
  {
    auto s = open_stage("whole.stage", 0);
    CALL_OK(*s, Cmd::SetLora, encode(SetLoraRequest{deterministic_lora(*s)}));
    const MicroBatch two = repeat_row(mb, 1, 2);
    const MicroBatch one = repeat_row(mb, 1, 1);
    const ForwardReply base = forward(*s, 0, 0, one.tokens, &one);
    const ZoForwardReply z =
        decode_zo_forward_reply(CALL_OK(*s, Cmd::ZoForward, encode(zo_request(1, 1e-3f, two.tokens, &two))));
    CHECK_EQ(int(z.output_kind), 1);
    CHECK_EQ(z.copy_loss_sums.size(), size_t(2));
    CHECK_EQ(z.copy_weight_sums.size(), size_t(2));
    if (z.copy_loss_sums.size() == 2 && z.copy_weight_sums.size() == 2) {
      CHECK_MSG(z.copy_weight_sums[0] == base.weight_sum && z.copy_weight_sums[1] == base.weight_sum,
                "per-copy weight sums are the copy's mask sums");
      CHECK_MSG(z.copy_loss_sums[0] != z.copy_loss_sums[1], "+eps and -eps copies gave the same loss");
      const double mean = 0.5 * (z.copy_loss_sums[0] + z.copy_loss_sums[1]);
      CHECK_MSG(rel(mean, base.loss_sum) < 1e-3, "mean of the +-eps losses " + std::to_string(mean) +
                                                     " vs unperturbed " + std::to_string(base.loss_sum));
    }
    // A step's queries split over requests (first_query): q = 2 in one request gives the losses of queries 0 and
    // 1 sent one per request, so the host may cut a micro-batch's copies into several pipeline ops.
    const MicroBatch four = repeat_row(mb, 1, 4);
    const ZoForwardReply both =
        decode_zo_forward_reply(CALL_OK(*s, Cmd::ZoForward, encode(zo_request(2, 1e-3f, four.tokens, &four))));
    std::vector<double> split;
    for (uint32_t i = 0; i < 2; ++i) {
      ZoForwardRequest one_query = zo_request(1, 1e-3f, two.tokens, &two);
      one_query.first_query = i;
      const ZoForwardReply r = decode_zo_forward_reply(CALL_OK(*s, Cmd::ZoForward, encode(one_query)));
      split.insert(split.end(), r.copy_loss_sums.begin(), r.copy_loss_sums.end());
    }
    CHECK_EQ(both.copy_loss_sums.size(), size_t(4));
    CHECK_EQ(split.size(), size_t(4));
    if (both.copy_loss_sums.size() == 4 && split.size() == 4) {
      CHECK_MSG(split[0] == z.copy_loss_sums[0] && split[1] == z.copy_loss_sums[1], "first_query 0 is query 0");
      for (int c = 0; c < 4; ++c) {
        CHECK_MSG(rel(both.copy_loss_sums[c], split[c]) < 1e-6,
                  "copy " + std::to_string(c) + ": q = 2 in one request " + std::to_string(both.copy_loss_sums[c]) +
                      " vs one query per request " + std::to_string(split[c]));
      }
      CHECK_MSG(split[2] != split[0], "query 1 used query 0's perturbation");
    }

    // Nothing kept, LoRA unchanged; ZO_FORWARD counts as a forward.
    const StatsReply st = decode_stats_reply(CALL_OK(*s, Cmd::Stats, {}));
    CHECK_EQ(st.forward_count, uint64_t(5));
    EXPECT_ERROR(*s, Cmd::ZoForward, encode(zo_request(1, 1e-2f, two.tokens, nullptr)), ErrorCode::BadArgument,
                 "needs targets and mask");
    EXPECT_ERROR(*s, Cmd::ZoForward, encode(zo_request(1, 1e-2f, mb.tokens, &one)), ErrorCode::BadArgument,
                 "ZO_FORWARD targets must be i32 [2, 16]");

    // ZO_STEP moves every B and no A; lr 0 moves nothing.
    const auto before = lora_map(*s, false);
    CALL_OK(*s, Cmd::ZoStep, encode(ZoStepRequest{5, 6, 0.0f, {1.0f, -2.0f}}));
    for (const auto& [name, t] : lora_map(*s, false)) {
      CHECK_MSG(t.data == before.at(name).data, name + " moved at lr 0");
    }
    CALL_OK(*s, Cmd::ZoStep, encode(ZoStepRequest{5, 6, 1e-2f, {1.0f, -2.0f}}));
    const auto after = lora_map(*s, false);
    for (const auto& [name, t] : before) {
      const bool is_b = name.find("lora_B") != std::string::npos;
      CHECK_MSG(is_b == (after.at(name).data != t.data), name + (is_b ? " did not move" : " moved"));
    }

    // SET_SPLIT: one entry per layer; all zeros is always fine; no OpenCL in the test engine; not mid-step.
    EXPECT_ERROR(*s, Cmd::SetSplit, encode(SetSplitRequest{{{0, 0}}}), ErrorCode::BadArgument,
                 "SET_SPLIT has 1 entries, this stage has 5 layers [0, 5)");
    SetSplitRequest zeros;
    zeros.layers.assign(5, SplitEntry{});
    CALL_OK(*s, Cmd::SetSplit, encode(zeros));
    SetSplitRequest gpu = zeros;
    gpu.layers[2].gpu_kv_groups = 1;
    EXPECT_ERROR(*s, Cmd::SetSplit, encode(gpu), ErrorCode::BadArgument, "SET_SPLIT: layer 2: cannot give work");
    forward(*s, 3, kForwardKeepActivations, mb.tokens, &mb);
    EXPECT_ERROR(*s, Cmd::SetSplit, encode(zeros), ErrorCode::BadArgument, "kept activations");
    backward(*s, 3, 1.0f, nullptr);
    CALL_OK(*s, Cmd::SetSplit, encode(zeros));

    // PROFILE: the documented JSON document (docs/protocol.md "PROFILE reply").
    const ProfileReply pr = decode_profile_reply(CALL_OK(*s, Cmd::Profile, encode(ProfileRequestMsg{1, 8, 1})));
    try {
      const json_mini::Value doc = json_mini::parse(pr.json);
      CHECK_MSG(doc["shape"]["batch"].num == 1 && doc["shape"]["seqLen"].num == 8 && doc["reps"].num == 1, pr.json);
      const auto& backends = doc["backends"].arr;
      CHECK_MSG(!backends.empty() && backends[0]["role"].str == "primary", pr.json);
      CHECK_EQ(doc["layers"].arr.size(), 5 * backends.size());
      CHECK_EQ(doc["heads"].arr.size(), backends.size());
      CHECK_EQ(doc["mlp"].arr.size(), backends.size());
      for (const auto& l : doc["layers"].arr) {
        CHECK_MSG(l["forwardMs"].num >= 0 && l["backwardMs"].num >= 0 && l.has("layer") && l.has("backend"), pr.json);
      }
      for (const auto& h : doc["heads"].arr) {
        CHECK_MSG(h.has("attentionForwardMsPerGroup") && h.has("attentionBackwardMsPerGroup"), pr.json);
      }
      for (const auto& m : doc["mlp"].arr) {
        CHECK_MSG(m.has("forwardMsPer32Cols") && m.has("backwardMsPer32Cols"), pr.json);
      }
    } catch (const std::exception& e) {
      agent_test::fail(__FILE__, __LINE__, std::string("PROFILE reply is not the documented JSON: ") + e.what());
    }
  }
  // Pipeline positions: hidden out of a first stage; f16 hidden into the last equals its f32 widening.
  {
    auto first = open_stage("first.stage", 0);
    const MicroBatch two = repeat_row(mb, 0, 2);
    const ZoForwardReply h =
        decode_zo_forward_reply(CALL_OK(*first, Cmd::ZoForward, encode(zo_request(1, 1e-3f, two.tokens, nullptr))));
    CHECK_EQ(int(h.output_kind), 0);
    CHECK_MSG(h.hidden.dtype == DType::F32 && h.hidden.dims == (std::vector<uint32_t>{2, kT, 64}),
              h.hidden.shape_string());
    // flags bit 2: the same hidden state, narrowed to f16 on the agent (round to nearest even, as to_f16 does).
    ZoForwardRequest z16 = zo_request(1, 1e-3f, two.tokens, nullptr);
    z16.flags = kForwardRelayF16;
    const ZoForwardReply h_f16 = decode_zo_forward_reply(CALL_OK(*first, Cmd::ZoForward, encode(z16)));
    CHECK_MSG(h_f16.hidden.dtype == DType::F16 && h_f16.hidden.dims == h.hidden.dims, h_f16.hidden.shape_string());
    CHECK_MSG(h_f16.hidden.data == to_f16(h.hidden).data, "ZO_FORWARD f16 relay is not the f32 reply rounded to f16");
    z16.flags = 1;
    EXPECT_ERROR(*first, Cmd::ZoForward, encode(z16), ErrorCode::BadArgument, "ZO_FORWARD flags has unknown bits");
    auto last = open_stage("last.stage", 0);
    CALL_OK(*last, Cmd::SetLora, encode(SetLoraRequest{deterministic_lora(*last)}));
    const Tensor h16 = to_f16(h.hidden);
    const Tensor h32 = widen(h16);
    const ZoForwardReply a =
        decode_zo_forward_reply(CALL_OK(*last, Cmd::ZoForward, encode(zo_request(1, 1e-3f, h16, &two))));
    const ZoForwardReply b =
        decode_zo_forward_reply(CALL_OK(*last, Cmd::ZoForward, encode(zo_request(1, 1e-3f, h32, &two))));
    CHECK_MSG(a.copy_loss_sums == b.copy_loss_sums, "ZO_FORWARD f16 input differs from its f32 widening");
    const ForwardReply fa = forward(*last, 0, 0, h16, &two);
    const ForwardReply fb = forward(*last, 0, 0, h32, &two);
    CHECK_MSG(fa.loss_sum == fb.loss_sum, "FORWARD f16 input differs from its f32 widening");
    EXPECT_ERROR(*last, Cmd::ZoForward, encode(zo_request(1, 1e-3f, two.tokens, &two)), ErrorCode::BadArgument,
                 "f32 [B, T, 64] hidden states (f16 is accepted too)");
  }
  // Memory budget: a 2 MiB budget holds the stage but not the scratch of a large batch.
  {
    auto s = open_stage("whole.stage", 0, 2u << 20);
    std::vector<int32_t> ids(8 * 512, 1);
    std::vector<float> ones(8 * 512, 1.0f);
    MicroBatch big;
    big.tokens = Tensor::make_i32({8, 512}, ids.data());
    big.targets = big.tokens;
    big.mask = Tensor::make_f32({8, 512}, ones.data());
    EXPECT_ERROR(*s, Cmd::ZoForward, encode(zo_request(2, 1e-3f, big.tokens, &big)), ErrorCode::OutOfMemory,
                 "ZO_FORWARD of batch [8, 512] (4 copies)");
    EXPECT_ERROR(*s, Cmd::Profile, encode(ProfileRequestMsg{8, 512, 1}), ErrorCode::OutOfMemory,
                 "PROFILE of micro-batch [8, 512]");
  }
}

}  // namespace

// A keeping FORWARD after a BACKWARD reuses the released micro-batch's activation buffers (StageModel's spare)
// without clearing them: every buffer must be written in full before it is read. F0 B0 F1 B1 (F1 on micro-batch 0's
// old buffers) must give exactly the losses and gradients of F0 F1 B0 B1 (F1 on fresh, zeroed buffers); the spare
// is one micro-batch's layer buffers, taken by the next keeping forward and dropped by one that keeps nothing.
void test_reused_activation_buffers() {
  const MicroBatch mb[2] = {make_batch(3), make_batch(4)};
  auto reused = open_stage("whole.stage", kLoadFlagTrainA);
  auto fresh = open_stage("whole.stage", kLoadFlagTrainA);
  CALL_OK(*reused, Cmd::SetLora, encode(SetLoraRequest{deterministic_lora(*reused)}));
  CALL_OK(*fresh, Cmd::SetLora, encode(SetLoraRequest{deterministic_lora(*fresh)}));
  const float scale = 1e-2f;
  const double r0 = forward(*reused, 0, kForwardKeepActivations, mb[0].tokens, &mb[0]).loss_sum;
  backward(*reused, 0, scale, nullptr);
  const uint64_t spare = reused->model()->spare_activation_bytes();
  const uint64_t per_micro = reused->model()->activation_bytes(kB, kT);
  // One micro-batch's layer buffers (not the last stage's final-norm and loss extras, which are not reused).
  CHECK_MSG(spare > per_micro / 2 && spare <= per_micro, "spare " + std::to_string(spare) + " of " + std::to_string(per_micro));
  const double r1 = forward(*reused, 1, kForwardKeepActivations, mb[1].tokens, &mb[1]).loss_sum;
  CHECK_EQ(reused->model()->kept_activation_bytes(), per_micro);  // F1 took the spare...
  backward(*reused, 1, scale, nullptr);
  const double f0 = forward(*fresh, 0, kForwardKeepActivations, mb[0].tokens, &mb[0]).loss_sum;
  const double f1 = forward(*fresh, 1, kForwardKeepActivations, mb[1].tokens, &mb[1]).loss_sum;
  backward(*fresh, 0, scale, nullptr);
  backward(*fresh, 1, scale, nullptr);
  CHECK_MSG(r0 == f0 && r1 == f1, "losses reused " + std::to_string(r0) + ", " + std::to_string(r1) + " fresh " +
                                      std::to_string(f0) + ", " + std::to_string(f1));
  const auto gr = lora_map(*reused, true), gf = lora_map(*fresh, true);
  CHECK_EQ(gr.size(), gf.size());
  for (const auto& [name, t] : gr) {
    CHECK_MSG(std::memcmp(t.f32(), gf.at(name).f32(), t.elements() * sizeof(float)) == 0, name + " differs");
  }
  // ...and a forward that keeps nothing (evaluation) drops it, so evaluation's memory is as planned.
  CHECK(reused->model()->spare_activation_bytes() > 0);
  forward(*reused, 7, 0, mb[0].tokens, &mb[0]);
  CHECK_EQ(reused->model()->spare_activation_bytes(), uint64_t(0));
}

int main() {
  const auto t0 = std::chrono::steady_clock::now();
  test_split_equals_whole();
  test_reused_activation_buffers();
  test_lora_fa_training_and_zero_b();
  test_budget_and_arguments();
  test_zo_profile_split_without_stage();
  test_zo_profile_split_with_stage();
  std::printf("took %.0f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return agent_test::finish("agent.split_whole");
}
