// The compute backends one agent runs on: the CPU backend always, OpenCL (the secondary, given a share of each
// layer by SET_SPLIT) when the phone has a usable driver, and the reference backend on request (tests, debugging).
// Built once at start-up from the command line and shared by every stage the session loads. Not the math (kernels/) nor the layer composition (stage_model.h).
#pragma once
#include <memory>
#include <string>

#include "confidant/backend.h"
#include "stats.h"

namespace confidant::agent {

struct EngineOptions {
  std::string backend = "cpu";  // "cpu" or "ref": what runs everything not given to OpenCL by a split
  int threads = 0;              // CPU threads; 0 = cpu_default_threads()
  // What a layer split gives its [0, g) share to: "opencl" (the product), "none", or, for tests of the split
  // logic on machines without OpenCL, "cpu" / "ref".
  std::string secondary = "opencl";
};

class Engine {
 public:
  static std::unique_ptr<Engine> create(const EngineOptions& o);

  Backend& primary() { return *primary_; }
  Backend* secondary() { return secondary_.get(); }  // the split's GPU side; nullptr when unavailable
  const std::string& secondary_unavailable_reason() const { return secondary_why_not_; }
  int threads() const { return threads_; }
  // The secondary's time in split layers so far (layer.cpp adds to it; STATS reports its growth per command).
  SecondaryTime& secondary_time() { return secondary_time_; }
  // For HELLO's "backends" field, e.g. "cpu(avx512 x2),opencl(pthread-skylake...)" or "cpu(...),opencl-unavailable".
  std::string describe() const;

 private:
  std::unique_ptr<Backend> primary_;
  std::unique_ptr<Backend> secondary_;
  std::string secondary_why_not_;
  int threads_ = 1;
  SecondaryTime secondary_time_;
};

}  // namespace confidant::agent
