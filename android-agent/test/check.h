// Minimal test harness for the agent tests: CHECK macros that report file:line and keep going, and helpers to
// read files and compare floats (printing the max difference). Not a framework.
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace agent_test {

inline int& failures() {
  static int n = 0;
  return n;
}

inline void fail(const char* file, int line, const std::string& msg) {
  ++failures();
  std::fprintf(stderr, "FAIL %s:%d: %s\n", file, line, msg.c_str());
}

inline int finish(const char* name) {
  if (failures()) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, failures());
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline bool write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(f);
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace agent_test

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) agent_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_MSG(cond, msg)                                                                        \
  do {                                                                                              \
    if (!(cond)) agent_test::fail(__FILE__, __LINE__, std::string("CHECK(" #cond "): ") + (msg)); \
  } while (0)

#define CHECK_EQ(a, b)                                                                              \
  do {                                                                                              \
    const auto va_ = (a);                                                                           \
    const auto vb_ = (b);                                                                           \
    if (!(va_ == vb_)) {                                                                            \
      std::ostringstream os_;                                                                       \
      os_ << #a " == " #b " (" << +va_ << " vs " << +vb_ << ")";                                    \
      agent_test::fail(__FILE__, __LINE__, os_.str());                                              \
    }                                                                                               \
  } while (0)

// Runs `stmt`, which must throw `ExType` whose what() contains `needle`.
#define CHECK_THROWS(ExType, stmt, needle)                                                                  \
  do {                                                                                                      \
    bool thrown_ = false;                                                                                   \
    try {                                                                                                   \
      stmt;                                                                                                 \
    } catch (const ExType& e_) {                                                                            \
      thrown_ = true;                                                                                       \
      if (!agent_test::contains(e_.what(), needle))                                                         \
        agent_test::fail(__FILE__, __LINE__, std::string("message lacks '") + (needle) + "': " + e_.what()); \
    }                                                                                                       \
    if (!thrown_) agent_test::fail(__FILE__, __LINE__, "expected " #ExType " from " #stmt);                 \
  } while (0)
