// Budget arithmetic and human-readable refusals (STYLE.md: errors a person can act on).
#include "memory_budget.h"

#include <cstdio>

namespace confidant::agent {

std::string format_bytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[48];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

std::string MemoryBudget::check(uint64_t needed_bytes, const std::string& what, const std::string& detail) const {
  if (unlimited() || needed_bytes <= limit_) return {};
  return what + " needs " + format_bytes(needed_bytes) + " (" + detail + "), the memory budget is " +
         format_bytes(limit_) + " (--memory-budget-mb): use a smaller micro-batch or sequence, fewer layers on this "
         "phone, or a larger budget";
}

}  // namespace confidant::agent
