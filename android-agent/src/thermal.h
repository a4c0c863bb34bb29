// The phone's temperature for STATS, read by the agent itself from the kernel's thermal zones
// (<root>/thermal_zoneN/{type,temp}; root is /sys/class/thermal on a phone), so the host gets it with every step's
// STATS instead of paying an adb shell round trip per phone. Not the battery temperature (the host's dumpsys).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace confidant::agent {

constexpr const char* kDefaultThermalRoot = "/sys/class/thermal";

struct Temperature {
  int32_t millicelsius = 0;
  std::string zone;  // the type of the zone it was read from, e.g. "cpu-1-2-usr"
};

// A zone's raw `temp` text in millidegrees Celsius, or nullopt when it is no temperature. The kernel ABI says
// millidegrees, but some vendor drivers report tenths or whole degrees: the size of the number tells which (as the
// host's thermalRawToC, electron/core/adb/parse.ts). 0, values outside [-40, 150] degrees and non-numbers are
// sentinels of disabled or broken sensors.
std::optional<int32_t> thermal_raw_to_millicelsius(const std::string& text);

enum class ZoneKind { Chip, Other, NotATemperature };
// Chip: a CPU, GPU or SoC sensor (Qualcomm cpu-*/gpuss-*/tsens*, MediaTek mtktscpu, Exynos and Tensor BIG/MID/LITTLE/
// G3D, generic soc-thermal); NotATemperature: a battery current/voltage limiter or state-of-charge zone that reads
// as a number but is no thermometer (ibat, vbat, vph, socd, bcl, lmh, *-lvlN); Other: skin, battery, PMIC, modem...
ZoneKind thermal_zone_kind(const std::string& type);

// The temperature STATS reports: the hottest Chip zone, or when the phone has none with a usable reading, the
// hottest Other zone. Why the hottest chip sensor: it is what the phone's thermal governor throttles the cores on,
// the chip the agent heats, and what a user knows as "CPU temperature"; skin and battery zones lag minutes behind
// and are often PMIC ADC channels that take milliseconds per read, which every step's STATS should not pay for, so
// they are read only as the fallback. nullopt when no zone under root has a usable reading (no such folder, SELinux
// refusing the reads, a host without sensors).
std::optional<Temperature> read_temperature(const std::string& root);

}  // namespace confidant::agent
