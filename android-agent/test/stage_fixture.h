// Test helper: a stories260K stage (packed by the pack_stages fixture) as an in-process StageModel on a chosen
// engine, with deterministic non-zero LoRA adapters and a deterministic micro-batch.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "stage_model.h"

namespace agent_test {

inline std::unique_ptr<confidant::agent::Engine> make_engine(const std::string& primary, const std::string& secondary) {
  confidant::agent::EngineOptions o;
  o.backend = primary;
  o.secondary = secondary;
  return confidant::agent::Engine::create(o);
}

inline uint32_t name_hash(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

// A stage with every module adapted at rank 4; A and B filled from each tensor's global name (so a split stage
// and the whole model hold the same adapters).
inline std::unique_ptr<confidant::agent::StageModel> open_model(confidant::agent::Engine& e, const std::string& file,
                                                                bool train_a) {
  using namespace confidant::agent;
  auto f = StageFile::open(std::string(AGENT_TEST_DATA) + "/" + file);
  LoraSet lora(f->config(), 4, 8.0f, 0x7F, train_a);
  auto m = std::make_unique<StageModel>(e, std::move(f), std::move(lora));
  std::vector<NamedTensor> t = m->lora().get(false);
  for (NamedTensor& nt : t) {
    const uint32_t h = name_hash(nt.name);
    const bool is_b = nt.name.find("lora_B") != std::string::npos;
    for (size_t i = 0; i < nt.tensor.elements(); ++i) {
      nt.tensor.f32()[i] = (is_b ? 0.05f : 0.2f) * std::sin(0.37f * float(i) + float(h % 1000) * 0.01f);
    }
  }
  m->lora().set(t);
  return m;
}

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
  std::vector<float> mask;
};

inline Batch make_batch(int B, int T, uint32_t seed) {
  Batch b;
  b.B = B;
  b.T = T;
  uint32_t x = 12345u + 977u * seed;
  for (int i = 0; i < B * T; ++i) {
    x = x * 1664525u + 1013904223u;
    b.tokens.push_back(static_cast<int32_t>(3 + (x >> 8) % 509));
  }
  for (int i = 0; i < B * T; ++i) {
    const int t = i % T;
    b.targets.push_back(t + 1 < T ? b.tokens[i + 1] : 2);
    b.mask.push_back(t < 2 ? 0.0f : 1.0f);
  }
  return b;
}

// max |a - b| / max |a|
inline double max_rel(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(a[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

}  // namespace agent_test
