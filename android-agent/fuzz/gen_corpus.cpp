// Writes the seed corpus of the fuzz targets (corpus/<target>/<name>): one valid example of every request and reply,
// encoded by the agent's own encoders, plus the framing refusals and short training sequences on the stories260K
// shapes (hidden 64, vocab 512, 5 layers) that scripts/fuzz.sh loads. Run once; the output is committed:
//   build/fuzz/android-agent/fuzz/fuzz_gen_corpus android-agent/fuzz/corpus
// Seeds only need to be valid starting points: the fuzzer mutates them into the malformed inputs.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "fuzz_common.h"
#include "payload_codecs.h"

using namespace confidant::agent;
using confidant::fuzz::Bytes;
using confidant::fuzz::codec_index;

namespace {

std::string g_out;
int g_files = 0;

void write(const std::string& target, const std::string& name, const Bytes& b) {
  const std::string dir = g_out + "/" + target;
  ::mkdir(g_out.c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw std::runtime_error("cannot write " + dir + "/" + name);
  ++g_files;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// ---- tensors on the stories260K shapes ----
Tensor tokens(uint32_t B, uint32_t T) {
  std::vector<int32_t> v(B * T);
  for (size_t i = 0; i < v.size(); ++i) v[i] = int32_t(1 + 37 * i % 500);
  return Tensor::make_i32({B, T}, v.data());
}
Tensor hidden(uint32_t B, uint32_t T) {
  std::vector<float> v(B * T * 64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * float(i % 17) - 0.08f;
  return Tensor::make_f32({B, T, 64}, v.data());
}
Tensor hidden_f16(uint32_t B, uint32_t T) {
  Tensor t;
  t.dtype = DType::F16;
  t.dims = {B, T, 64};
  t.data.assign(size_t(B) * T * 64 * 2, 0);
  for (size_t i = 0; i < t.data.size(); i += 2) t.data[i + 1] = 0x3C;  // 1.0 in f16
  return t;
}
Tensor mask(uint32_t B, uint32_t T) {
  std::vector<float> v(B * T, 1.0f);
  return Tensor::make_f32({B, T}, v.data());
}

// Any dtype and shape, data filled with small valid token ids / values: for the wrong-shape seeds.
Tensor any_tensor(DType dtype, std::vector<uint32_t> dims) {
  Tensor t;
  t.dtype = dtype;
  t.dims = std::move(dims);
  t.data.assign(t.elements() * dtype_size(dtype), 0);
  for (size_t i = 0; i < t.data.size(); i += dtype_size(dtype)) t.data[i] = uint8_t(1 + i % 7);
  return t;
}

// ---- one valid request payload per command ----
struct Req {
  const char* name;
  Cmd cmd;
  Bytes payload;
};

std::vector<Req> requests() {
  ForwardRequest fwd_tokens;
  fwd_tokens.micro_id = 1;
  fwd_tokens.flags = kForwardKeepActivations | kForwardReturnLogits;
  fwd_tokens.input = tokens(1, 4);
  fwd_tokens.has_targets = true;
  fwd_tokens.targets = tokens(1, 4);
  fwd_tokens.mask = mask(1, 4);
  ForwardRequest fwd_hidden;
  fwd_hidden.micro_id = 2;
  fwd_hidden.flags = kForwardKeepActivations;
  fwd_hidden.input = hidden(1, 2);
  ForwardRequest fwd_f16 = fwd_hidden;
  fwd_f16.input = hidden_f16(1, 2);
  BackwardRequest bwd_last{1, 1.0f, false, {}};
  BackwardRequest bwd_mid{2, 1.0f, true, hidden(1, 2)};
  ZoForwardRequest zo;
  zo.seed = 42;
  zo.step = 1;
  zo.queries = 1;
  zo.eps = 1e-2f;
  zo.input = tokens(2, 3);
  zo.has_targets = true;
  zo.targets = tokens(2, 3);
  zo.mask = mask(2, 3);
  SetLoraRequest lora;
  std::vector<float> a(2 * 64, 0.1f);
  lora.tensors.push_back({"model.layers.0.self_attn.q_proj.lora_A", Tensor::make_f32({2, 64}, a.data())});
  SetSplitRequest split;
  split.layers.assign(5, SplitEntry{});
  return {
      {"hello", Cmd::Hello, encode(HelloRequest{kProtocolVersion, confidant::fuzz::kToken})},
      {"load-stage", Cmd::LoadStage, encode(LoadStageRequest{"stage.bin", 4, 8.0f, 0x7F, kLoadFlagTrainA})},
      {"set-lora", Cmd::SetLora, encode(lora)},
      {"forward-tokens-targets", Cmd::Forward, encode(fwd_tokens)},
      {"forward-hidden-f32", Cmd::Forward, encode(fwd_hidden)},
      {"forward-hidden-f16", Cmd::Forward, encode(fwd_f16)},
      {"backward-last", Cmd::Backward, encode(bwd_last)},
      {"backward-grad", Cmd::Backward, encode(bwd_mid)},
      {"grad-norm", Cmd::GradNorm, {}},
      {"optim-step", Cmd::OptimStep, encode(OptimStepRequest{1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f})},
      {"get-lora-grads", Cmd::GetLora, encode(GetLoraRequest{kGetLoraWithGrads})},
      {"stats", Cmd::Stats, {}},
      {"zero-grad", Cmd::ZeroGrad, {}},
      {"zo-forward", Cmd::ZoForward, encode(zo)},
      {"zo-step", Cmd::ZoStep, encode(ZoStepRequest{42, 1, 1e-3f, {0.5f}})},
      {"profile", Cmd::Profile, encode(ProfileRequestMsg{1, 4, 1})},
      {"set-split", Cmd::SetSplit, encode(split)},
      {"shutdown", Cmd::Shutdown, {}},
  };
}

const Req& find(const std::vector<Req>& all, const std::string& name) {
  for (const Req& r : all) {
    if (name == r.name) return r;
  }
  throw std::invalid_argument("no seed request " + name);
}

// ---- fuzz_payloads: selector byte + payload ----
void payload_seeds(const std::vector<Req>& reqs) {
  auto put = [](const std::string& name, const char* codec, const Bytes& p) {
    write("fuzz_payloads", name, cat({{codec_index(codec)}, p}));
  };
  for (const Req& r : reqs) {
    const char* codec = cmd_name(static_cast<uint16_t>(r.cmd));
    const bool empty = r.payload.empty();
    put(r.name, empty ? "empty" : codec, r.payload);
  }
  put("hello-reply", "HELLO reply",
      encode(HelloReply{"0.1.0", 1, "arm64-v8a", 8, 1u << 30, "cpu(neon x4),opencl(Adreno (TM) 740)", "gpu"}));
  put("load-stage-reply", "LOAD_STAGE reply", encode(LoadStageReply{0, 5, 7, 1040128, 12345}));
  ForwardReply fh;
  fh.output_kind = 0;
  fh.hidden = hidden(1, 2);
  put("forward-reply-hidden", "FORWARD reply", encode(fh));
  ForwardReply fl;
  fl.output_kind = 1;
  fl.loss_sum = 12.5;
  fl.weight_sum = 4;
  fl.has_logits = true;
  std::vector<float> logits(2 * 8, 0.25f);
  fl.logits = Tensor::make_f32({1, 2, 8}, logits.data());
  put("forward-reply-loss", "FORWARD reply", encode(fl));
  put("backward-reply", "BACKWARD reply", encode(BackwardReply{true, hidden(1, 1)}));
  put("grad-norm-reply", "GRAD_NORM reply", encode(GradNormReply{0.125}));
  std::vector<float> b(64 * 2, 0.0f);
  put("get-lora-reply", "GET_LORA reply",
      encode(GetLoraReply{{{"model.layers.0.self_attn.q_proj.lora_B", Tensor::make_f32({64, 2}, b.data())}}}));
  StatsReply st{1u << 20, 2u << 20, 1000, 3, 2, 4096, 8192};
  st.primary_busy_us = 900;
  st.secondary_busy_us = 400;
  st.has_temperature = true;
  st.temperature_millicelsius = 47250;
  st.temperature_zone = "cpu-1-4-usr";
  put("stats-reply", "STATS reply", encode(st));
  ZoForwardReply zl;
  zl.output_kind = 1;
  zl.copy_loss_sums = {1.5, 1.25};
  zl.copy_weight_sums = {4, 4};
  put("zo-forward-reply-loss", "ZO_FORWARD reply", encode(zl));
  put("profile-reply", "PROFILE reply", encode(ProfileReply{"{\"shape\":{\"batch\":1,\"seqLen\":4},\"reps\":1}"}));
  put("error-reply", "ERROR", encode(ErrorReply{ErrorCode::BadArgument, "FORWARD: payload too short"}));
}

// ---- fuzz_session: mode byte + (u16 kind, u16 length, payload)* ----
Bytes sframe(uint16_t kind, const Bytes& p) {
  Bytes out{uint8_t(kind), uint8_t(kind >> 8), uint8_t(p.size()), uint8_t(p.size() >> 8)};
  out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes sframe(const Req& r) { return sframe(static_cast<uint16_t>(r.cmd), r.payload); }

// Wrong dtypes, ranks and sizes for every tensor a stage checks (input, targets, mask, grad_output, LoRA) and
// out-of-range counts: one seed each, so the fuzzer starts next to every shape check instead of having to rewrite a
// tensor header and every length after it by chance. Each request must be refused with BAD_ARGUMENT.
void shape_seeds(uint8_t whole, uint8_t mid) {
  using D = DType;
  const std::vector<std::pair<std::string, Tensor>> first_inputs = {
      {"scalar", any_tensor(D::I32, {})},      {"1d", any_tensor(D::I32, {4})},
      {"3d", any_tensor(D::I32, {1, 4, 1})},   {"4d", any_tensor(D::I32, {1, 1, 4, 1})},
      {"f32", any_tensor(D::F32, {1, 4})},     {"u8", any_tensor(D::U8, {1, 4})},
      {"f16", any_tensor(D::F16, {1, 4})},     {"empty-batch", any_tensor(D::I32, {0, 4})},
      {"empty-seq", any_tensor(D::I32, {1, 0})}, {"hidden", hidden(1, 2)},
  };
  for (const auto& [name, t] : first_inputs) {
    ForwardRequest f;
    f.input = t;
    write("fuzz_session", "whole-forward-input-" + name, cat({{whole}, sframe(0x0004, encode(f))}));
  }
  std::vector<int32_t> out_of_vocab{1, 2, 512, 3};
  ForwardRequest oov;
  oov.input = Tensor::make_i32({1, 4}, out_of_vocab.data());
  write("fuzz_session", "whole-forward-token-out-of-vocab", cat({{whole}, sframe(0x0004, encode(oov))}));
  const std::vector<std::pair<std::string, std::pair<Tensor, Tensor>>> targets = {
      {"targets-1d", {any_tensor(D::I32, {4}), mask(1, 4)}},
      {"targets-f32", {any_tensor(D::F32, {1, 4}), mask(1, 4)}},
      {"targets-short", {any_tensor(D::I32, {1, 3}), mask(1, 4)}},
      {"targets-out-of-vocab", {Tensor::make_i32({1, 4}, out_of_vocab.data()), mask(1, 4)}},
      {"mask-i32", {tokens(1, 4), any_tensor(D::I32, {1, 4})}},
      {"mask-3d", {tokens(1, 4), any_tensor(D::F32, {1, 4, 1})}},
  };
  for (const auto& [name, tm] : targets) {
    ForwardRequest f;
    f.input = tokens(1, 4);
    f.has_targets = true;
    f.targets = tm.first;
    f.mask = tm.second;
    write("fuzz_session", "whole-forward-" + name, cat({{whole}, sframe(0x0004, encode(f))}));
  }
  const std::vector<std::pair<std::string, Tensor>> mid_inputs = {
      {"tokens", tokens(1, 4)},           {"2d", any_tensor(D::F32, {2, 64})},
      {"wrong-hidden", any_tensor(D::F32, {1, 2, 63})}, {"4d", any_tensor(D::F32, {1, 1, 2, 64})},
      {"u8", any_tensor(D::U8, {1, 2, 64})},
  };
  for (const auto& [name, t] : mid_inputs) {
    ForwardRequest f;
    f.input = t;
    write("fuzz_session", "mid-forward-input-" + name, cat({{mid}, sframe(0x0004, encode(f))}));
  }
  // BACKWARD grad_output of the wrong shape, after a FORWARD that kept activations for micro-batch 2.
  ForwardRequest keep;
  keep.micro_id = 2;
  keep.flags = kForwardKeepActivations;
  keep.input = hidden(1, 2);
  for (const auto& [name, t] : std::vector<std::pair<std::string, Tensor>>{
           {"short", hidden(1, 1)}, {"f16", hidden_f16(1, 2)}, {"2d", any_tensor(D::F32, {2, 64})}}) {
    write("fuzz_session", "mid-backward-grad-" + name,
          cat({{mid}, sframe(0x0004, encode(keep)), sframe(0x0005, encode(BackwardRequest{2, 1.0f, true, t}))}));
  }
  // ZO_FORWARD: batch not a multiple of 2q, q = 0, q over the limit, a later query of the step, queries past it.
  for (const auto& [name, q, first, B] : std::vector<std::tuple<std::string, uint32_t, uint32_t, uint32_t>>{
           {"odd-batch", 1, 0, 3},
           {"zero-queries", 0, 0, 2},
           {"too-many-queries", 1025, 0, 2},
           {"first-query", 1, 5, 2},
           {"first-query-past-limit", 2, 1023, 4}}) {
    ZoForwardRequest zo;
    zo.queries = q;
    zo.first_query = first;
    zo.eps = 1e-2f;
    zo.input = tokens(B, 2);
    zo.has_targets = true;
    zo.targets = tokens(B, 2);
    zo.mask = mask(B, 2);
    write("fuzz_session", "whole-zo-forward-" + name, cat({{whole}, sframe(0x000C, encode(zo))}));
  }
  // ZO_FORWARD on a middle stage, hidden state in and out as f16 (flags bit 2).
  ZoForwardRequest zo_mid;
  zo_mid.queries = 1;
  zo_mid.eps = 1e-2f;
  zo_mid.flags = kForwardRelayF16;
  zo_mid.input = hidden_f16(2, 2);
  write("fuzz_session", "mid-zo-forward-f16", cat({{mid}, sframe(0x000C, encode(zo_mid))}));
  // SET_SPLIT with the wrong layer count and an impossible split; SET_LORA with a tensor of the wrong shape.
  SetSplitRequest split;
  split.layers.assign(4, SplitEntry{});
  write("fuzz_session", "whole-set-split-count", cat({{whole}, sframe(0x000F, encode(split))}));
  split.layers.assign(5, SplitEntry{5, 33});
  write("fuzz_session", "whole-set-split-impossible", cat({{whole}, sframe(0x000F, encode(split))}));
  SetLoraRequest lora;
  std::vector<float> a(3 * 64, 0.1f);
  lora.tensors.push_back({"model.layers.1.self_attn.q_proj.lora_A", Tensor::make_f32({3, 64}, a.data())});
  write("fuzz_session", "mid-set-lora-wrong-rank", cat({{mid}, sframe(0x0003, encode(lora))}));
}

void session_seeds(const std::vector<Req>& reqs) {
  constexpr uint8_t kUnauth = 0, kAuth = 1, kWhole = 1 | (1 << 1), kMid = 1 | (2 << 1), kTinyBudget = 1 | 8;
  for (const Req& r : reqs) {
    write("fuzz_session", std::string("auth-") + r.name, cat({{kAuth}, sframe(r)}));
    write("fuzz_session", std::string("before-hello-") + r.name, cat({{kUnauth}, sframe(r)}));
  }
  write("fuzz_session", "hello-then-stats", cat({{kUnauth}, sframe(find(reqs, "hello")), sframe(find(reqs, "stats"))}));
  // A HELLO whose token length runs past the payload: BAD_ARGUMENT, still unauthenticated; then a good HELLO.
  Bytes bad_hello = find(reqs, "hello").payload;
  bad_hello[4] = 0xFF;
  write("fuzz_session", "malformed-hello-then-hello",
        cat({{kUnauth}, sframe(0x0001, bad_hello), sframe(find(reqs, "hello")), sframe(find(reqs, "stats"))}));
  write("fuzz_session", "unknown-kind", cat({{kAuth}, sframe(0x0042, {}), sframe(0x8001, {})}));
  write("fuzz_session", "tiny-budget-load", cat({{kTinyBudget}, sframe(find(reqs, "load-stage"))}));
  // The whole stage under a 2 MiB budget: a [1, 4] FORWARD fits, the ZO_FORWARD batch may not.
  write("fuzz_session", "tiny-budget-whole",
        cat({{uint8_t(kWhole | 8)}, sframe(find(reqs, "forward-tokens-targets")), sframe(find(reqs, "zo-forward"))}));
  // A backprop step and a zeroth-order step on the whole model (first and last stage in one).
  write("fuzz_session", "whole-train-step",
        cat({{kWhole}, sframe(find(reqs, "forward-tokens-targets")), sframe(find(reqs, "backward-last")),
             sframe(find(reqs, "grad-norm")), sframe(find(reqs, "optim-step")), sframe(find(reqs, "zero-grad"))}));
  write("fuzz_session", "whole-zo-step",
        cat({{kWhole}, sframe(find(reqs, "zo-forward")), sframe(find(reqs, "zo-step")), sframe(find(reqs, "stats"))}));
  write("fuzz_session", "whole-set-split", cat({{kWhole}, sframe(find(reqs, "set-split")), sframe(find(reqs, "set-lora"))}));
  // A middle stage (layers [1, 3)): hidden-state input and a gradient from the next stage.
  write("fuzz_session", "mid-train-step",
        cat({{kMid}, sframe(find(reqs, "forward-hidden-f32")), sframe(find(reqs, "backward-grad")),
             sframe(find(reqs, "get-lora-grads"))}));
  write("fuzz_session", "mid-forward-f16", cat({{kMid}, sframe(find(reqs, "forward-hidden-f16"))}));
  shape_seeds(kWhole, kMid);
}

// ---- fuzz_server: the raw byte stream of a host ----
Bytes frame(uint16_t kind, uint32_t id, const Bytes& p) {
  Frame f;
  f.header.kind = kind;
  f.header.request_id = id;
  f.payload = p;
  return encode_frame(f);
}

void server_seeds(const std::vector<Req>& reqs) {
  const Bytes hello = frame(0x0001, 1, find(reqs, "hello").payload);
  uint32_t id = 2;
  for (const Req& r : reqs) {
    if (r.cmd == Cmd::Hello) continue;
    write("fuzz_server", std::string("hello-") + r.name, cat({hello, frame(static_cast<uint16_t>(r.cmd), id++, r.payload)}));
  }
  write("fuzz_server", "before-hello-stats", frame(0x0009, 7, {}));
  write("fuzz_server", "wrong-token", frame(0x0001, 1, encode(HelloRequest{kProtocolVersion, "wrong"})));
  write("fuzz_server", "wrong-version", frame(0x0001, 1, encode(HelloRequest{2, confidant::fuzz::kToken})));
  Bytes bad_magic = hello;
  bad_magic[0] = 'X';
  write("fuzz_server", "bad-magic", bad_magic);
  Bytes absurd = cat({hello, frame(0x0003, 2, {})});
  absurd[hello.size() + 15] = 0x80;  // 2 GiB payload, over the 1 GiB limit
  write("fuzz_server", "absurd-length", absurd);
  Bytes flags = cat({hello, frame(0x0009, 2, {})});
  flags[hello.size() + 6] = 1;
  write("fuzz_server", "nonzero-flags", flags);
  Bytes truncated = cat({hello, frame(0x0004, 2, find(reqs, "forward-tokens-targets").payload)});
  truncated.resize(truncated.size() - 5);
  write("fuzz_server", "truncated-payload", truncated);
  Bytes bad_hello = find(reqs, "hello").payload;
  bad_hello[4] = 0xFF;
  write("fuzz_server", "malformed-hello-then-hello", cat({frame(0x0001, 1, bad_hello), hello, frame(0x0009, 2, {})}));
  write("fuzz_server", "unknown-kind", cat({hello, frame(0x0042, 2, {}), frame(0x0009, 3, {})}));
  // NOP: discarded after HELLO, refused before it, BAD_FRAME when it carries a payload (docs/protocol.md "NOP").
  const uint16_t nop = static_cast<uint16_t>(Cmd::Nop);
  write("fuzz_server", "nop-between-requests", cat({hello, frame(0x0009, 2, {}), frame(nop, 0, {}), frame(0x0009, 3, {})}));
  write("fuzz_server", "nop-before-hello", cat({frame(nop, 0, {}), hello}));
  write("fuzz_server", "nop-with-payload", cat({hello, frame(nop, 0, {1, 2, 3}), frame(0x0009, 3, {})}));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR (android-agent/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  g_out = argv[1];
  const std::vector<Req> reqs = requests();
  payload_seeds(reqs);
  session_seeds(reqs);
  server_seeds(reqs);
  std::printf("wrote %d seed files under %s\n", g_files, g_out.c_str());
  return 0;
}
