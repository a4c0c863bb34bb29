// Thermal zones -> one temperature for STATS (thermal.h): list <root>/thermal_zoneN, classify each zone by its type,
// read the temp files of the chip zones (or, failing those, of the others) and keep the hottest usable reading.
#include "thermal.h"

#include <dirent.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <utility>
#include <vector>

namespace confidant::agent {

namespace {

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The first line of a small sysfs file, or "" when it cannot be read.
std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  return line;
}

// thermal_zone<N> -> N, or -1 for any other name.
long zone_number(const char* name) {
  static const char kPrefix[] = "thermal_zone";
  const size_t n = sizeof kPrefix - 1;
  if (std::string(name).compare(0, n, kPrefix) != 0 || !std::isdigit(static_cast<unsigned char>(name[n]))) return -1;
  char* end = nullptr;
  const long v = std::strtol(name + n, &end, 10);
  return *end == '\0' ? v : -1;
}

}  // namespace

std::optional<int32_t> thermal_raw_to_millicelsius(const std::string& text) {
  const std::string t = trim(text);
  if (t.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long raw = std::strtoll(t.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || raw == 0) return std::nullopt;
  const long long mag = raw < 0 ? -raw : raw;
  const long long mc = mag >= 1000 ? raw : mag >= 150 ? raw * 100 : raw * 1000;  // milli, tenths, whole degrees
  if (mc < -40000 || mc > 150000) return std::nullopt;
  return static_cast<int32_t>(mc);
}

ZoneKind thermal_zone_kind(const std::string& type) {
  const std::string t = lower(trim(type));
  for (const char* part : {"ibat", "vbat", "vph", "socd", "bcl", "lmh", "current", "voltage"}) {
    if (contains(t, part)) return ZoneKind::NotATemperature;
  }
  const size_t lvl = t.find("-lvl");
  if (lvl != std::string::npos && lvl + 4 < t.size() && std::isdigit(static_cast<unsigned char>(t[lvl + 4]))) {
    return ZoneKind::NotATemperature;
  }
  for (const char* part : {"cpu", "gpu", "soc", "tsens"}) {
    if (contains(t, part)) return ZoneKind::Chip;
  }
  for (const char* name : {"big", "mid", "little", "g3d"}) {
    if (t == name) return ZoneKind::Chip;
  }
  return ZoneKind::Other;
}

std::optional<Temperature> read_temperature(const std::string& root) {
  DIR* dir = ::opendir(root.c_str());
  if (!dir) return std::nullopt;
  std::vector<std::pair<long, std::string>> zones;  // (N, folder), sorted by N so ties go to the lowest zone
  while (const dirent* e = ::readdir(dir)) {
    const long n = zone_number(e->d_name);
    if (n >= 0) zones.emplace_back(n, root + "/" + e->d_name);
  }
  ::closedir(dir);
  std::sort(zones.begin(), zones.end());

  std::vector<std::pair<std::string, std::string>> chip, other;  // (type, folder)
  for (const auto& [n, folder] : zones) {
    std::string type = trim(read_line(folder + "/type"));
    if (type.empty()) type = "thermal_zone" + std::to_string(n);
    const ZoneKind kind = thermal_zone_kind(type);
    if (kind == ZoneKind::Chip) chip.emplace_back(type, folder);
    else if (kind == ZoneKind::Other) other.emplace_back(type, folder);
  }
  for (const auto* group : {&chip, &other}) {
    std::optional<Temperature> hottest;
    for (const auto& [type, folder] : *group) {
      const std::optional<int32_t> mc = thermal_raw_to_millicelsius(read_line(folder + "/temp"));
      if (mc && (!hottest || *mc > hottest->millicelsius)) hottest = Temperature{*mc, type};
    }
    if (hottest) return hottest;
  }
  return std::nullopt;
}

}  // namespace confidant::agent
