// PROFILE: measures, for the loaded stage and a given micro-batch shape, what the planner needs to decide splits:
// per-layer forward/backward time on each backend, and attention time per KV group and MLP time per column block
// on the CPU and on OpenCL. Timings are medians over reps runs after one warm-up.
#pragma once
#include <cstdint>
#include <string>

#include "stage_model.h"

namespace confidant::agent {

struct ProfileRequest {
  uint32_t batch = 1, seq_len = 0, reps = 3;
};

// The result as a JSON document (docs/protocol.md, "PROFILE"), so the host can grow its use without new fields
// on the wire.
std::string profile_stage(StageModel& model, const ProfileRequest& r);

}  // namespace confidant::agent
