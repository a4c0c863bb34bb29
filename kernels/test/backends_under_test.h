// The backends every backend test runs against: the reference, the CPU backend with 1 thread and with the default
// thread count (best SIMD level), the CPU backend at each lower SIMD level this machine can run (1 thread, forced
// through CONFIDANT_SIMD, so the AVX2 / scalar paths are checked on an AVX-512 machine too), and OpenCL when the
// build and the machine have it (its fallback is the default CPU backend). Says loudly when OpenCL is absent.
// CONFIDANT_TEST_NO_OPENCL=1 leaves OpenCL out (quick CPU-only iterations; PoCL compiles kernels slowly).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "confidant/backend.h"

namespace ct {

struct BackendUnderTest {
  std::string label;
  confidant::Backend* backend;
};

class BackendsUnderTest {
 public:
  BackendsUnderTest() {
    using namespace confidant;
    add("reference", make_reference_backend());
    add("cpu x1", make_cpu_backend(1));
    cpu_default_ = make_cpu_backend(0);
    list_.push_back({"cpu default", cpu_default_.get()});
    // Lower SIMD levels than the default one (names as in src/cpu/simd_level.cpp).
    const std::string best = cpu_default_->info().device;
    for (const char* level : {"avx2", "neon", "scalar"}) {
      if (best.find(level) != std::string::npos) continue;
      setenv("CONFIDANT_SIMD", level, 1);
      std::unique_ptr<Backend> b = make_cpu_backend(1);
      unsetenv("CONFIDANT_SIMD");
      // The backend falls back to scalar when the level is not available: keep only real ones (and scalar once).
      if (b->info().device.find(level) != std::string::npos) add(std::string("cpu ") + level + " x1", std::move(b));
    }
    std::string why = "skipped: CONFIDANT_TEST_NO_OPENCL is set";
    if (!std::getenv("CONFIDANT_TEST_NO_OPENCL")) opencl_ = make_opencl_backend(cpu_default_.get(), &why);
    if (opencl_) {
      list_.push_back({"opencl", opencl_.get()});
    } else {
      std::printf("\n**************************************************************\n"
                  "** OpenCL backend ABSENT, not tested: %s\n"
                  "**************************************************************\n\n",
                  why.c_str());
    }
    for (const BackendUnderTest& b : list_) {
      const BackendInfo info = b.backend->info();
      std::printf("backend under test: %-16s %s / %s\n", b.label.c_str(), info.name.c_str(), info.device.c_str());
    }
  }
  const std::vector<BackendUnderTest>& list() const { return list_; }

 private:
  void add(std::string label, std::unique_ptr<confidant::Backend> b) {
    list_.push_back({std::move(label), b.get()});
    owned_.push_back(std::move(b));
  }
  // Declaration order = reverse destruction order: OpenCL goes before the CPU backend it falls back to.
  std::unique_ptr<confidant::Backend> cpu_default_;
  std::vector<std::unique_ptr<confidant::Backend>> owned_;
  std::unique_ptr<confidant::Backend> opencl_;
  std::vector<BackendUnderTest> list_;
};

}  // namespace ct
