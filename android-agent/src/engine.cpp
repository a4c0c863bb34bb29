#include "engine.h"

#include <stdexcept>

namespace confidant::agent {

std::unique_ptr<Engine> Engine::create(const EngineOptions& o) {
  auto e = std::make_unique<Engine>();
  if (o.backend == "cpu") {
    e->primary_ = make_cpu_backend(o.threads);
  } else if (o.backend == "ref") {
    e->primary_ = make_reference_backend();
  } else {
    throw std::invalid_argument("unknown backend '" + o.backend + "' (expected cpu or ref)");
  }
  e->threads_ = e->primary_->info().threads;
  if (o.secondary == "opencl") {
    e->secondary_ = make_opencl_backend(e->primary_.get(), &e->secondary_why_not_);
  } else if (o.secondary == "cpu") {
    // A second CPU backend sharing the cores: only for testing the split logic where no OpenCL exists.
    e->secondary_ = make_cpu_backend(o.threads);
  } else if (o.secondary == "ref") {
    e->secondary_ = make_reference_backend();
  } else if (o.secondary == "none") {
    e->secondary_why_not_ = "disabled on the command line";
  } else {
    throw std::invalid_argument("unknown secondary backend '" + o.secondary + "' (expected opencl, cpu, ref or none)");
  }
  return e;
}

std::string Engine::describe() const {
  const BackendInfo p = primary_->info();
  std::string s = p.name + "(" + p.device + ")";
  if (secondary_) {
    const BackendInfo g = secondary_->info();
    s += "," + g.name + "(" + g.device + ")";
  } else {
    s += ",opencl-unavailable(" + secondary_why_not_ + ")";
  }
  return s;
}

}  // namespace confidant::agent
