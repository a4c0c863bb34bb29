// Resident-memory probes for STATS; Linux and Android expose /proc/self/status, other hosts get getrusage's peak.
#include "stats.h"

#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace confidant::agent {

namespace {

// "VmRSS:\t  1234 kB" -> 1234 * 1024
bool parse_kb_line(const std::string& line, const char* key, uint64_t* out) {
  const std::string k = key;
  if (line.compare(0, k.size(), k) != 0) return false;
  const char* p = line.c_str() + k.size();
  char* end = nullptr;
  unsigned long long v = std::strtoull(p, &end, 10);
  if (end == p) return false;
  *out = static_cast<uint64_t>(v) * 1024;
  return true;
}

}  // namespace

MemoryUsage parse_proc_status(const std::string& text) {
  MemoryUsage m;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    parse_kb_line(line, "VmRSS:", &m.rss_bytes);
    parse_kb_line(line, "VmHWM:", &m.peak_rss_bytes);
  }
  return m;
}

MemoryUsage read_memory_usage() {
  std::ifstream f("/proc/self/status");
  MemoryUsage m;
  if (f) {
    std::stringstream ss;
    ss << f.rdbuf();
    m = parse_proc_status(ss.str());
  }
  if (m.peak_rss_bytes == 0) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
#if defined(__APPLE__)
      m.peak_rss_bytes = static_cast<uint64_t>(ru.ru_maxrss);  // bytes on macOS
#else
      m.peak_rss_bytes = static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // kB elsewhere
#endif
    }
  }
  if (m.peak_rss_bytes < m.rss_bytes) m.peak_rss_bytes = m.rss_bytes;
  return m;
}

}  // namespace confidant::agent
