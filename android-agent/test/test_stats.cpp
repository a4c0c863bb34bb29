// STATS beyond the totals: busy time per backend grows on the backend that computed (a split that gives every layer
// to the secondary moves the time there; PROFILE counts nowhere), HELLO names the OpenCL device type, and the
// temperature is the hottest CPU/GPU zone of the thermal root the agent was given (a fake one here, written like a
// Snapdragon phone's), with the fallbacks and sentinels of thermal.h.
#include <sys/stat.h>

#include <cstdlib>

#include "check.h"
#include "session_client.h"
#include "stage_fixture.h"
#include "thermal.h"

using namespace confidant::agent;
using namespace agent_test;

namespace {

const std::string kThermal = std::string(AGENT_TEST_DATA) + "/stats-test-thermal";

void mkdirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0755);
  }
}

void write_text(const std::string& path, const std::string& text) {
  write_file(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// thermal_zone<n> with a type and, unless temp is null, a temp file.
void write_zone(const std::string& root, int n, const std::string& type, const char* temp) {
  const std::string dir = root + "/thermal_zone" + std::to_string(n);
  mkdirs(dir);
  write_text(dir + "/type", type + "\n");
  if (temp) write_text(dir + "/temp", std::string(temp) + "\n");
  else std::remove((dir + "/temp").c_str());
}

std::unique_ptr<Session> open_session(Engine& e, const std::string& thermal_root) {
  SessionOptions o{"test-token", 0, "x86_64", &e};
  o.thermal_root = thermal_root;
  auto s = std::make_unique<Session>(o);
  CALL_OK(*s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "test-token"}));
  return s;
}

void load_whole(Session& s) {
  LoadStageRequest ls;
  ls.path = std::string(AGENT_TEST_DATA) + "/whole.stage";
  ls.lora_rank = 4;
  ls.lora_alpha = 8.0f;
  ls.target_mask = 0x7F;
  ls.flags = kLoadFlagTrainA;
  CALL_OK(s, Cmd::LoadStage, encode(ls));
}

StatsReply stats(Session& s) { return decode_stats_reply(CALL_OK(s, Cmd::Stats, {})); }

// One training micro-batch on the whole model: FORWARD (keep) + BACKWARD.
void train_micro_batch(Session& s) {
  const Batch b = make_batch(2, 16, 5);
  ForwardRequest f;
  f.flags = kForwardKeepActivations;
  f.input = Tensor::make_i32({uint32_t(b.B), uint32_t(b.T)}, b.tokens.data());
  f.has_targets = true;
  f.targets = Tensor::make_i32({uint32_t(b.B), uint32_t(b.T)}, b.targets.data());
  f.mask = Tensor::make_f32({uint32_t(b.B), uint32_t(b.T)}, b.mask.data());
  CALL_OK(s, Cmd::Forward, encode(f));
  BackwardRequest bw;
  bw.loss_scale = 0.01f;
  CALL_OK(s, Cmd::Backward, encode(bw));
}

void set_split(Session& s, uint32_t kv_groups, uint32_t mlp_cols) {
  SetSplitRequest r;
  r.layers.assign(5, SplitEntry{kv_groups, mlp_cols});
  CALL_OK(s, Cmd::SetSplit, encode(r));
}

struct Delta {
  uint64_t busy, primary, secondary;
};
Delta delta(const StatsReply& a, const StatsReply& b) {
  return {b.busy_us - a.busy_us, b.primary_busy_us - a.primary_busy_us, b.secondary_busy_us - a.secondary_busy_us};
}
std::string show(const Delta& d) {
  return "busy " + std::to_string(d.busy) + " us, primary " + std::to_string(d.primary) + " us, secondary " +
         std::to_string(d.secondary) + " us";
}

// stories260K: 4 KV groups and 172 MLP columns per layer, 5 layers in whole.stage.
void test_busy_by_backend(Engine& e, const std::string& label, bool naive_secondary) {
  auto s = open_session(e, kThermal);
  load_whole(*s);
  train_micro_batch(*s);  // warm-up (first-touch of the weights, OpenCL buffer creation)

  // Unsplit: everything on the primary, and the primary's time is all of it.
  StatsReply a = stats(*s);
  CHECK_MSG(!a.short_layout, "STATS reply without the per-backend fields");
  train_micro_batch(*s);
  StatsReply b = stats(*s);
  Delta d = delta(a, b);
  std::printf("%-28s unsplit:            %s\n", label.c_str(), show(d).c_str());
  CHECK_MSG(d.busy > 0 && d.secondary == 0 && d.primary == d.busy, label + " unsplit: " + show(d));

  // Every layer's attention and MLP on the secondary: its time moves there, and lies within the commands' time.
  set_split(*s, 4, 172);
  train_micro_batch(*s);
  StatsReply c = stats(*s);
  d = delta(b, c);
  std::printf("%-28s all on secondary:   %s\n", label.c_str(), show(d).c_str());
  CHECK_MSG(d.secondary > 0 && d.secondary <= d.busy && d.primary < d.busy, label + " all on secondary: " + show(d));
  if (naive_secondary) {
    // The reference backend computes every layer with double accumulation; the CPU backend is left the embedding,
    // the norms, the 512-token head and the loss.
    CHECK_MSG(d.secondary > d.primary, label + " all on the naive secondary: " + show(d));
  }

  // Both backends at once (the helper-thread path of layer.cpp).
  set_split(*s, 2, 96);
  train_micro_batch(*s);
  StatsReply m = stats(*s);
  d = delta(c, m);
  std::printf("%-28s half and half:      %s\n", label.c_str(), show(d).c_str());
  CHECK_MSG(d.secondary > 0 && d.primary > 0 && d.secondary <= d.busy, label + " mixed split: " + show(d));

  // PROFILE runs both backends but is not training time: no counter moves.
  CALL_OK(*s, Cmd::Profile, encode(ProfileRequestMsg{1, 8, 1}));
  StatsReply p = stats(*s);
  d = delta(m, p);
  CHECK_MSG(d.busy == 0 && d.primary == 0 && d.secondary == 0, label + " PROFILE moved the counters: " + show(d));
}

void test_hello_device_type(Engine& e, const std::string& expected, const std::string& label) {
  Session s(SessionOptions{"test-token", 0, "x86_64", &e});
  const HelloReply h =
      decode_hello_reply(CALL_OK(s, Cmd::Hello, encode(HelloRequest{kProtocolVersion, "test-token"})));
  CHECK_MSG(!h.short_layout && h.opencl_device_type == expected,
            label + ": HELLO opencl_device_type '" + h.opencl_device_type + "', expected '" + expected + "'");
}

void test_opencl(bool static_build) {
  auto ocl = make_engine("cpu", "opencl");
  if (!ocl->secondary()) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true" && !static_build) {
      fail(__FILE__, __LINE__, "CI must test OpenCL, but it is unavailable: " + ocl->secondary_unavailable_reason());
    } else {
      std::printf("SKIP (loud): OpenCL not tested here: %s\n", ocl->secondary_unavailable_reason().c_str());
    }
    test_hello_device_type(*ocl, "", "no OpenCL");
    return;
  }
  const confidant::BackendInfo info = ocl->secondary()->info();
  std::printf("OpenCL: %s, type %s\n", info.device.c_str(), info.device_type.c_str());
  const std::string t = info.device_type;
  CHECK_MSG(t == "gpu" || t == "cpu" || t == "accelerator" || t == "other", "device type '" + t + "'");
  // PoCL's CPU devices are named after the host CPU ("pthread-skylake-...", "cpu-haswell-...").
  if (info.device.rfind("pthread-", 0) == 0 || info.device.rfind("cpu-", 0) == 0) {
    CHECK_MSG(t == "cpu", "PoCL's CPU device reports type '" + t + "'");
  }
  test_hello_device_type(*ocl, t, "OpenCL");
  test_busy_by_backend(*ocl, "cpu + opencl", false);
}

void test_thermal_parsing() {
  CHECK_EQ(thermal_raw_to_millicelsius("46390\n").value_or(-1), 46390);
  CHECK_EQ(thermal_raw_to_millicelsius(" -5250 ").value_or(-1), -5250);
  CHECK_EQ(thermal_raw_to_millicelsius("463").value_or(-1), 46300);  // tenths
  CHECK_EQ(thermal_raw_to_millicelsius("46").value_or(-1), 46000);   // whole degrees
  for (const char* bad : {"0", "-273000", "200000", "", "n/a", "45.5", "99999999999999999999"}) {
    CHECK_MSG(!thermal_raw_to_millicelsius(bad), std::string("'") + bad + "' read as a temperature");
  }
  CHECK(thermal_zone_kind("cpu-1-2-usr") == ZoneKind::Chip);
  CHECK(thermal_zone_kind("gpuss-0-usr") == ZoneKind::Chip);
  CHECK(thermal_zone_kind("mtktscpu") == ZoneKind::Chip);
  CHECK(thermal_zone_kind("tsens_tz_sensor7") == ZoneKind::Chip);
  CHECK(thermal_zone_kind("BIG") == ZoneKind::Chip);
  CHECK(thermal_zone_kind("soc_thermal") == ZoneKind::Chip);
  CHECK(thermal_zone_kind("pm8550b-ibat-lvl0") == ZoneKind::NotATemperature);
  CHECK(thermal_zone_kind("socd") == ZoneKind::NotATemperature);
  CHECK(thermal_zone_kind("pm8550-vph-lvl1") == ZoneKind::NotATemperature);
  CHECK(thermal_zone_kind("battery") == ZoneKind::Other);
  CHECK(thermal_zone_kind("skin-therm") == ZoneKind::Other);
  CHECK(thermal_zone_kind("midas-therm") == ZoneKind::Other);  // "mid" counts only as the whole name
}

void test_temperature(Engine& e) {
  // A Snapdragon-like phone: the hottest zone is a battery limiter (no thermometer), then an unreadable CPU zone,
  // then cpu-1-4-usr at 44.3 C; zone 10 sorts after zone 9 by number, not by name.
  std::system(("rm -rf '" + kThermal + "'").c_str());
  write_zone(kThermal, 0, "battery", "33500");
  write_zone(kThermal, 1, "skin-therm", "35300");
  write_zone(kThermal, 2, "cpu-0-0-usr", "41500");
  write_zone(kThermal, 3, "pm8550b-ibat-lvl0", "90000");
  write_zone(kThermal, 4, "gpuss-0-usr", "39000");
  write_zone(kThermal, 5, "cpu-1-5-usr", nullptr);
  write_zone(kThermal, 9, "cpu-1-3-usr", "-273000");
  write_zone(kThermal, 10, "cpu-1-4-usr", "44300");
  std::optional<Temperature> t = read_temperature(kThermal);
  CHECK_MSG(t && t->millicelsius == 44300 && t->zone == "cpu-1-4-usr",
            t ? t->zone + " " + std::to_string(t->millicelsius) : std::string("none"));

  // Through STATS, read afresh on every request.
  auto s = open_session(e, kThermal);
  StatsReply st = stats(*s);
  CHECK_MSG(st.has_temperature && st.temperature_millicelsius == 44300 && st.temperature_zone == "cpu-1-4-usr",
            "STATS temperature " + std::to_string(st.temperature_millicelsius) + " " + st.temperature_zone);
  write_zone(kThermal, 4, "gpuss-0-usr", "51250");
  st = stats(*s);
  CHECK_MSG(st.has_temperature && st.temperature_millicelsius == 51250 && st.temperature_zone == "gpuss-0-usr",
            "after the GPU warmed: " + std::to_string(st.temperature_millicelsius) + " " + st.temperature_zone);

  // No chip zone with a reading: the hottest other thermometer (the limiter is still no thermometer).
  for (int n : {2, 4, 9, 10}) std::system(("rm -rf '" + kThermal + "/thermal_zone" + std::to_string(n) + "'").c_str());
  t = read_temperature(kThermal);
  CHECK_MSG(t && t->millicelsius == 35300 && t->zone == "skin-therm", t ? t->zone : std::string("none"));

  // Nothing readable, or no folder: no temperature, and STATS says so.
  std::system(("rm -rf '" + kThermal + "'/thermal_zone0 '" + kThermal + "'/thermal_zone1").c_str());
  CHECK(!read_temperature(kThermal));
  auto none = open_session(e, kThermal + "/missing");
  st = stats(*none);
  CHECK(!st.short_layout && !st.has_temperature);
}

}  // namespace

int main() {
#ifdef CONFIDANT_STATIC_NO_DLOPEN
  constexpr bool kStaticBuild = true;
#else
  constexpr bool kStaticBuild = false;
#endif
  mkdirs(kThermal);
  test_thermal_parsing();
  auto two = make_engine("cpu", "ref");
  test_temperature(*two);
  test_hello_device_type(*two, "", "cpu + ref secondary");  // a test engine's secondary is no OpenCL device
  test_busy_by_backend(*two, "cpu + ref secondary", true);
  test_opencl(kStaticBuild);
  return finish("agent.stats");
}
