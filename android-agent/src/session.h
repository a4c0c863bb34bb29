// One host session as a pure request -> reply state machine: handshake (HELLO, token, version), then the stage
// commands of docs/protocol.md. No sockets here (server.h feeds it frames), so tests can drive it in-process.
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "engine.h"
#include "memory_budget.h"
#include "protocol.h"
#include "stage_model.h"
#include "stats.h"
#include "thermal.h"

namespace confidant::agent {

constexpr const char* kAgentVersion = "0.1.0";

struct SessionOptions {
  std::string token;
  uint64_t memory_budget_bytes = 0;  // 0 = unlimited
  std::string abi;
  Engine* engine = nullptr;  // required, not owned: the backends every stage of this session runs on
  std::string thermal_root = kDefaultThermalRoot;  // where STATS reads the temperature (thermal.h)
};

// Compares in time that depends only on the lengths, never on where the first difference is.
bool constant_time_equal(const std::string& a, const std::string& b);

class Session {
 public:
  // Throws std::invalid_argument when opts.engine is null.
  explicit Session(SessionOptions opts);
  ~Session();

  // Handles one well-framed request (the server already checked magic, flags and length). Returns the reply;
  // *close_after says whether the connection must be closed after sending it (handshake errors, SHUTDOWN).
  Frame handle(const Frame& request, bool* close_after);
  // A framing error seen by the server: the ERROR BAD_FRAME reply to send before closing.
  static Frame bad_frame(uint32_t request_id, const std::string& message);

  bool authenticated() const { return authenticated_; }
  Stats& stats() { return stats_; }
  const StageModel* model() const { return model_.get(); }

 private:
  std::vector<uint8_t> dispatch(uint16_t code, const std::vector<uint8_t>& payload, bool* close_after);
  std::vector<uint8_t> hello(const std::vector<uint8_t>& p);
  std::vector<uint8_t> load_stage(const std::vector<uint8_t>& p);
  std::vector<uint8_t> set_lora(const std::vector<uint8_t>& p);
  std::vector<uint8_t> forward(const std::vector<uint8_t>& p);
  std::vector<uint8_t> backward(const std::vector<uint8_t>& p);
  std::vector<uint8_t> grad_norm(const std::vector<uint8_t>& p);
  std::vector<uint8_t> optim_step(const std::vector<uint8_t>& p);
  std::vector<uint8_t> get_lora(const std::vector<uint8_t>& p);
  std::vector<uint8_t> stats(const std::vector<uint8_t>& p);
  std::vector<uint8_t> zero_grad(const std::vector<uint8_t>& p);
  std::vector<uint8_t> zo_forward(const std::vector<uint8_t>& p);
  std::vector<uint8_t> zo_step(const std::vector<uint8_t>& p);
  std::vector<uint8_t> profile(const std::vector<uint8_t>& p);
  std::vector<uint8_t> set_split(const std::vector<uint8_t>& p);
  StageModel& loaded(const char* cmd);
  uint64_t committed_bytes() const;  // weights + LoRA state + kept activations

  SessionOptions opts_;
  MemoryBudget budget_;
  bool authenticated_ = false;
  Stats stats_;
  std::set<uint32_t> f16_micros_;  // kept micro-batches whose FORWARD asked for f16 relay (flags bit 2)
  std::unique_ptr<StageModel> model_;
};

}  // namespace confidant::agent
