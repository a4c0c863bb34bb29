// Golden test: the whole stories260K model as one stage (layers [0,5), first + last) must reproduce llama2.c's
// greedy decoding from BOS exactly (test/fixtures/golden/stories260K-greedy-200.json, copied from stories260K-llama2c). No KV cache: every step
// recomputes the full prefix, as FORWARD does.
#include <chrono>

#include "check.h"
#include "json_mini.h"
#include "stage_model.h"

using namespace confidant::agent;

int main() {
  const std::string golden_path = GOLDEN_PATH;
  const std::vector<uint8_t> js = agent_test::read_file(golden_path);
  CHECK_MSG(!js.empty(), "cannot read " + golden_path);
  if (js.empty()) return agent_test::finish("agent.golden");
  const json_mini::Value golden = json_mini::parse(std::string(js.begin(), js.end()));
  std::vector<int32_t> expected;
  for (const auto& v : golden["ids"].arr) expected.push_back(static_cast<int32_t>(v.num));
  CHECK(expected.size() >= 2 && expected[0] == 1);

  // Every primary backend must decode the same ids: the fast CPU backend all 200, the reference (the spec,
  // naive and slow) the first 64.
  for (const char* backend : {"ref", "cpu"}) {
  const size_t want_ids = std::string(backend) == "ref" ? 65 : expected.size();
  EngineOptions eo;
  eo.backend = backend;
  eo.secondary = "none";
  const std::unique_ptr<Engine> engine = Engine::create(eo);
  StageModel model(*engine, StageFile::open(std::string(AGENT_TEST_DATA) + "/whole.stage"), LoraSet());
  const int V = static_cast<int>(model.config().vocab_size);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = {1};
  while (ids.size() < want_ids) {
    ForwardArgs a;
    a.B = 1;
    a.T = static_cast<int>(ids.size());
    a.tokens = ids.data();
    a.want_logits = true;
    const ForwardResult r = model.forward(a);
    const float* row = r.logits.data() + size_t(a.T - 1) * V;
    int best = 0;
    for (int v = 1; v < V; ++v) {
      if (row[v] > row[best]) best = v;
    }
    ids.push_back(best);
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  size_t first_diff = ids.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != expected[i]) {
      first_diff = i;
      break;
    }
  }
  CHECK_MSG(first_diff == ids.size(), "greedy ids diverge from the golden file at position " +
                                          std::to_string(first_diff) + ": got " +
                                          (first_diff < ids.size() ? std::to_string(ids[first_diff]) : "") +
                                          ", expected " +
                                          (first_diff < ids.size() ? std::to_string(expected[first_diff]) : ""));
  std::printf("%s: greedy decoding: %zu ids (%zu forwards without KV cache) in %.0f ms, first mismatch: %s\n",
              engine->describe().c_str(), ids.size(), ids.size() - 1, ms,
              first_diff == ids.size() ? "none" : std::to_string(first_diff).c_str());
  CHECK(!model.has_activations(0));  // inference keeps nothing
  }
  return agent_test::finish("agent.golden");
}
