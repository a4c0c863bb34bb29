// PROFILE (profiler.h): whole-layer forward/backward per backend, plus attention per KV group and MLP per 32
// columns per backend, which is what the planner's head scheduler divides. Runs on scratch copies of the LoRA
// adapters, so a profile never disturbs training state.
#include "profiler.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>

#include "layer.h"

namespace confidant::agent {

namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4f", v);
  return b;
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) o += ch;
  }
  return o + "\"";
}

// Copies of one layer's adapters (values, zeroed gradients) so profiling never touches the session's state.
struct ScratchAdapters {
  std::vector<LoraAdapter> copies;
  std::array<LoraAdapter*, kNumLoraModules> ptrs{};
  LayerCtx ctx;

  ScratchAdapters(const LayerCtx& c) : ctx(c) {
    copies.reserve(kNumLoraModules);
    for (int m = 0; m < kNumLoraModules; ++m) {
      if (!c.lora[m]) continue;
      LoraAdapter a = *c.lora[m];
      std::fill(a.dA.begin(), a.dA.end(), 0.0f);
      std::fill(a.dB.begin(), a.dB.end(), 0.0f);
      copies.push_back(std::move(a));
      ptrs[m] = &copies.back();
      ctx.lora[m] = &copies.back();
    }
  }
};

}  // namespace

std::string profile_stage(StageModel& model, const ProfileRequest& r) {
  Engine& eng = model.engine();
  const StageConfig& cfg = model.config();
  const int B = static_cast<int>(r.batch), T = static_cast<int>(r.seq_len), reps = std::max(1, int(r.reps));
  const size_t nC = size_t(B) * T * cfg.hidden_size;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> input(nC), dout(nC);
  for (float& v : input) v = normal(rng);
  for (float& v : dout) v = 1e-3f * normal(rng);

  struct Side {
    Backend* be;
    bool secondary;
  };
  std::vector<Side> sides{{&eng.primary(), false}};
  if (eng.secondary()) sides.push_back({eng.secondary(), true});

  std::ostringstream layers, heads, mlp, names;
  bool first_layer = true;
  for (size_t s = 0; s < sides.size(); ++s) {
    const Side& side = sides[s];
    // Names are unique: a same-kind secondary (test engines only) becomes "<name>-2".
    std::string name = side.be->info().name;
    if (side.secondary && name == eng.primary().info().name) name += "-2";
    names << (s ? "," : "") << "{\"name\":" << json_str(name) << ",\"role\":\""
          << (side.secondary ? "secondary" : "primary") << "\",\"device\":" << json_str(side.be->info().device)
          << "}";
    for (int li = 0; li < model.num_local_layers(); ++li) {
      ScratchAdapters sa(model.layer_ctx(li, B, T, nullptr));
      // Everything on this side: the empty split for the primary, all groups and columns for the secondary.
      LayerSplit all{};
      if (side.secondary) all = {cfg.num_kv_heads, cfg.intermediate_size};
      LayerActs la;
      alloc_layer_acts(&la, sa.ctx, all);
      la.x = input;
      std::vector<float> cur(nC), dcur(nC);
      const double fwd = median_ms(*side.be, reps, [&] {
        std::copy(input.begin(), input.end(), cur.begin());
        layer_forward(sa.ctx, eng.primary(), eng.secondary(), cur.data(), la);
      });
      const double bwd = median_ms(*side.be, reps, [&] {
        std::copy(dout.begin(), dout.end(), dcur.begin());
        layer_backward(sa.ctx, eng.primary(), eng.secondary(), sa.ptrs, dcur.data(), la);
      });
      layers << (first_layer ? "" : ",") << "{\"layer\":" << sa.ctx.layer << ",\"backend\":" << json_str(name)
             << ",\"forwardMs\":" << num(fwd) << ",\"backwardMs\":" << num(bwd) << "}";
      first_layer = false;
    }
    if (model.num_local_layers() > 0) {  // shares are the same shape in every layer: time the first one
      ScratchAdapters sa(model.layer_ctx(0, B, T, nullptr));
      LayerActs la;
      alloc_layer_acts(&la, sa.ctx, LayerSplit{});
      la.x = input;
      std::vector<float> cur(input);
      layer_forward(sa.ctx, eng.primary(), nullptr, cur.data(), la);  // fills xn1, xn2 with real values
      const ShareTimesMs t = time_shares(sa.ctx, *side.be, la, reps);
      const double groups = cfg.num_kv_heads, blocks = cfg.intermediate_size / 32.0;
      heads << (s ? "," : "") << "{\"backend\":" << json_str(name)
            << ",\"attentionForwardMsPerGroup\":" << num(t.attn_forward / groups)
            << ",\"attentionBackwardMsPerGroup\":" << num(t.attn_backward / groups) << "}";
      mlp << (s ? "," : "") << "{\"backend\":" << json_str(name)
          << ",\"forwardMsPer32Cols\":" << num(t.mlp_forward / blocks)
          << ",\"backwardMsPer32Cols\":" << num(t.mlp_backward / blocks) << "}";
    }
  }
  std::ostringstream o;
  o << "{\"shape\":{\"batch\":" << B << ",\"seqLen\":" << T << "},\"reps\":" << reps << ",\"backends\":["
    << names.str() << "],\"layers\":[" << layers.str() << "],\"heads\":[" << heads.str() << "],\"mlp\":["
    << mlp.str() << "]}";
  return o.str();
}

}  // namespace confidant::agent
