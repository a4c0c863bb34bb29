// The optional stage-file features through the forward pass (docs/stage-format.md, "RoPE frequencies and the
// attention window"), on stages packed by pack_stage.py --config (CMakeLists.txt):
// - whole_llama3.stage (flag bit 4, Llama 3 rope_scaling): StageModel uses the file's rope.inv_freq; its logits
//   differ from the unscaled whole.stage everywhere but position 0 (RoPE rotates position 0 by nothing), the fast
//   CPU backend matches the reference backend with the same table (forward and LoRA gradients), and the gradients
//   through the scaled rotation match central finite differences;
// - whole_window8.stage (flag bits 4 + 5: window 8, factor-1 linear scaling, so the table is the plain one): a
//   forward of T <= 8 runs and gives exactly whole.stage's logits, T = 9 is refused (in-process with
//   std::invalid_argument, through the session with an error reply that keeps the stage usable).
// There is no independent reference forward for a scaled table in these tests (the golden ids are llama2.c's
// unscaled model), so "the reference" here is the kernels' reference backend reading the same file.
#include <cstring>
#include <map>

#include "check.h"
#include "confidant/ref_ops.h"
#include "session_client.h"
#include "stage_fixture.h"

using namespace confidant::agent;
using namespace agent_test;

namespace {

const std::string kData = AGENT_TEST_DATA;
constexpr int kVocab = 512;

std::unique_ptr<StageModel> plain_model(Engine& e, const std::string& file) {
  return std::make_unique<StageModel>(e, StageFile::open(kData + "/" + file), LoraSet());
}

ForwardArgs args(const Batch& b, bool keep) {
  ForwardArgs a;
  a.B = b.B;
  a.T = b.T;
  a.tokens = b.tokens.data();
  a.targets = b.targets.data();
  a.mask = b.mask.data();
  a.keep = keep;
  a.want_logits = true;
  return a;
}

// max |a - b| / max |a| over the logits of positions [t0, t1) of every sequence.
double rel_at(const std::vector<float>& a, const std::vector<float>& b, int B, int T, int t0, int t1) {
  double diff = 0, scale = 0;
  for (int s = 0; s < B; ++s) {
    for (int t = t0; t < t1; ++t) {
      const size_t base = (size_t(s) * T + t) * kVocab;
      for (int v = 0; v < kVocab; ++v) {
        diff = std::max(diff, double(std::fabs(a[base + v] - b[base + v])));
        scale = std::max(scale, double(std::fabs(a[base + v])));
      }
    }
  }
  return scale > 0 ? diff / scale : diff;
}

void test_table_exposed(Engine& e) {
  auto plain = plain_model(e, "whole.stage");
  CHECK(plain->rope_inv_freq() == confidant::ref::rope_default_inv_freq(8, 10000.0f));
  auto l3 = plain_model(e, "whole_llama3.stage");
  const StageTensor* t = l3->file().find(kRopeInvFreqTensor);
  CHECK(t != nullptr);
  if (!t) return;
  const std::vector<float>& table = l3->rope_inv_freq();
  CHECK_EQ(table.size(), size_t(4));
  CHECK(table.size() == 4 && std::memcmp(table.data(), t->data, 16) == 0);
  CHECK(table != plain->rope_inv_freq());
}

void test_scaled_logits() {
  auto ref = make_engine("ref", "none");
  auto cpu = make_engine("cpu", "none");
  const Batch b = make_batch(2, 16, 3);

  const ForwardResult unscaled = plain_model(*cpu, "whole.stage")->forward(args(b, false));
  const ForwardResult scaled = plain_model(*cpu, "whole_llama3.stage")->forward(args(b, false));
  const ForwardResult scaled_ref = plain_model(*ref, "whole_llama3.stage")->forward(args(b, false));
  const size_t n = size_t(b.B) * b.T * kVocab;
  CHECK(unscaled.logits.size() == n && scaled.logits.size() == n && scaled_ref.logits.size() == n);
  if (unscaled.logits.size() != n || scaled.logits.size() != n || scaled_ref.logits.size() != n) return;

  // Position 0 is rotated by angle 0 and attends only to itself: the table cannot matter there. Every later
  // position sees the slower frequencies.
  const double d0 = rel_at(unscaled.logits, scaled.logits, b.B, b.T, 0, 1);
  const double d1 = rel_at(unscaled.logits, scaled.logits, b.B, b.T, 1, b.T);
  std::printf("llama3 table vs plain RoPE: logits rel diff %.2e at position 0, %.2e at positions 1..%d\n", d0, d1,
              b.T - 1);
  CHECK_MSG(d0 <= 1e-6, "position 0 should not depend on the RoPE table: " + std::to_string(d0));
  CHECK_MSG(d1 >= 1e-3, "the scaled table did not change the logits: " + std::to_string(d1));
  for (int t = 1; t < b.T; ++t) {
    const double dt = rel_at(unscaled.logits, scaled.logits, b.B, b.T, t, t + 1);
    CHECK_MSG(dt > 1e-6, "position " + std::to_string(t) + " ignores the scaled table");
  }
  std::printf("loss sum: plain %.6f, llama3 %.6f (random tokens: both near log(vocab) per token)\n", unscaled.loss_sum,
              scaled.loss_sum);
  CHECK(scaled.loss_sum != unscaled.loss_sum);

  // The reference backend with the same table.
  const double dr = max_rel(scaled_ref.logits.data(), scaled.logits.data(), n);
  std::printf("llama3 table: cpu vs reference backend logits rel diff %.2e\n", dr);
  CHECK_MSG(dr <= 2e-4, "cpu backend differs from the reference backend on the scaled stage: " + std::to_string(dr));
  CHECK(std::fabs(scaled_ref.loss_sum - scaled.loss_sum) <= 2e-4 * std::fabs(scaled_ref.loss_sum));
}

// LoRA gradients through the scaled rotation (rope_backward with the file's table): cpu vs reference backend, and
// central finite differences of the loss for q/k adapters (whose gradient passes through RoPE's backward).
void test_scaled_gradients() {
  auto ref = make_engine("ref", "none");
  auto cpu = make_engine("cpu", "none");
  const Batch b = make_batch(2, 12, 5);
  std::map<std::string, Tensor> grads[2];
  double weight = 0;
  Engine* engines[2] = {ref.get(), cpu.get()};
  for (int k = 0; k < 2; ++k) {
    auto m = open_model(*engines[k], "whole_llama3.stage", /*train_a=*/true);
    const ForwardResult fr = m->forward(args(b, true));
    weight = fr.weight_sum;
    m->backward(0, float(1.0 / fr.weight_sum), nullptr);
    for (NamedTensor& nt : m->lora().get(true)) grads[k][nt.name] = std::move(nt.tensor);
  }
  double worst = 0;
  for (const auto& kv : grads[0]) {
    if (kv.first.size() < 5 || kv.first.compare(kv.first.size() - 5, 5, ".grad") != 0) continue;
    worst = std::max(worst, max_rel(kv.second.f32(), grads[1].at(kv.first).f32(), kv.second.elements()));
  }
  std::printf("llama3 table: cpu vs reference LoRA gradients, worst rel diff %.2e\n", worst);
  CHECK_MSG(worst <= 2e-4, "LoRA gradients on the scaled stage differ between backends: " + std::to_string(worst));

  auto m = open_model(*cpu, "whole_llama3.stage", true);
  const std::vector<NamedTensor> base = m->lora().get(false);
  const char* probes[] = {"model.layers.0.self_attn.q_proj.lora_A", "model.layers.1.self_attn.k_proj.lora_A",
                          "model.layers.3.self_attn.q_proj.lora_B", "model.layers.4.self_attn.k_proj.lora_B"};
  for (const char* name : probes) {
    const Tensor& g = grads[1].at(std::string(name) + ".grad");
    size_t idx = 0;
    for (size_t i = 0; i < g.elements(); ++i) {
      if (std::fabs(g.f32()[i]) > std::fabs(g.f32()[idx])) idx = i;
    }
    const double eps = 1e-2;
    double L[2];
    for (int sgn = 0; sgn < 2; ++sgn) {
      std::vector<NamedTensor> l = base;
      for (NamedTensor& nt : l) {
        if (nt.name == name) nt.tensor.f32()[idx] += float(sgn ? -eps : eps);
      }
      m->lora().set(l);
      L[sgn] = m->forward(args(b, false)).loss_sum / weight;
    }
    const double fd = (L[0] - L[1]) / (2 * eps), an = g.f32()[idx];
    std::printf("  d/d %s[%zu]: analytic %.6e, finite difference %.6e\n", name, idx, an, fd);
    CHECK_MSG(std::fabs(fd - an) <= 0.02 * std::fabs(an) + 1e-6,
              std::string(name) + ": analytic " + std::to_string(an) + " vs finite difference " + std::to_string(fd));
  }
}

void test_window_in_process() {
  auto cpu = make_engine("cpu", "none");
  auto plain = plain_model(*cpu, "whole.stage");
  auto win = plain_model(*cpu, "whole_window8.stage");
  CHECK_EQ(win->config().sliding_window, 8u);
  // Factor-1 linear scaling: the file's table is the plain one, bit for bit.
  CHECK(win->rope_inv_freq() == plain->rope_inv_freq());

  // Within the window: runs, and (same table, full attention == windowed attention) equals the unwindowed model.
  for (int T : {1, 5, 8}) {
    const Batch b = make_batch(2, T, 11);
    const ForwardResult a = plain->forward(args(b, false));
    const ForwardResult w = win->forward(args(b, false));
    CHECK_MSG(a.logits == w.logits && a.loss_sum == w.loss_sum,
              "T = " + std::to_string(T) + " inside the window differs from the same model without one");
  }
  // One past the window: refused before any work, naming both numbers; the model stays usable.
  const Batch long_b = make_batch(2, 9, 11);
  CHECK_THROWS(std::invalid_argument, win->forward(args(long_b, false)),
               "sequence length 9 exceeds the model's sliding_window 8");
  CHECK_THROWS(std::invalid_argument, win->forward(args(long_b, true)), "at most 8 tokens");
  CHECK(!win->has_activations(0));
  const Batch ok_b = make_batch(1, 8, 12);
  CHECK(win->forward(args(ok_b, false)).logits.size() == size_t(8) * kVocab);
  // The unwindowed model has no such limit.
  CHECK(plain->forward(args(long_b, false)).logits.size() == size_t(2) * 9 * kVocab);
}

void test_window_session() {
  Session s(SessionOptions{"t", 0, "x86_64", &test_engine()});
  CALL_OK(s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "t"}));
  LoadStageRequest ls{kData + "/whole_window8.stage", 4, 8.0f, 0x7F, 0};
  CALL_OK(s, Cmd::LoadStage, encode(ls));
  std::vector<int32_t> ids(2 * 9, 7);
  ForwardRequest f;
  f.flags = kForwardReturnLogits;
  f.input = Tensor::make_i32({2, 9}, ids.data());
  const Reply r = call(s, Cmd::Forward, encode(f));
  CHECK(r.is_error() && !r.close);
  if (r.is_error()) {
    const ErrorReply e = r.error();
    std::printf("FORWARD [2, 9] on a window-8 stage: %s: %s\n", error_name(e.code), e.message.c_str());
    CHECK_MSG(contains(e.message, "FORWARD") && contains(e.message, "sliding_window 8"), e.message);
  }
  f.input = Tensor::make_i32({2, 8}, ids.data());
  const ForwardReply ok = decode_forward_reply(CALL_OK(s, Cmd::Forward, encode(f)));
  CHECK(ok.has_logits && ok.logits.dims == (std::vector<uint32_t>{2, 8, 512}));
}

}  // namespace

int main() {
  {
    auto cpu = make_engine("cpu", "none");
    test_table_exposed(*cpu);
  }
  test_scaled_logits();
  test_scaled_gradients();
  test_window_in_process();
  test_window_session();
  return finish("agent.rope_window");
}
