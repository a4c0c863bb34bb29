// The --memory-budget-mb limit: decides whether a LOAD_STAGE or FORWARD fits and words the refusal.
// Estimates come from the buffer sizes the stage model will allocate (stage_model.h), not from the OS.
#pragma once
#include <cstdint>
#include <string>

namespace confidant::agent {

std::string format_bytes(uint64_t bytes);  // "1.5 GiB", "640.0 KiB", "12 B"

class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t limit_bytes) : limit_(limit_bytes) {}
  uint64_t limit_bytes() const { return limit_; }  // 0 = unlimited
  bool unlimited() const { return limit_ == 0; }
  // Empty when `needed_bytes` fits, else a message: "<what> needs X (<detail>), the memory budget is Y".
  std::string check(uint64_t needed_bytes, const std::string& what, const std::string& detail) const;

 private:
  uint64_t limit_;
};

}  // namespace confidant::agent
