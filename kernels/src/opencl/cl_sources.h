// The OpenCL C sources of kernels/*.cl, embedded at build time by embed_cl.cmake (no file is read at run time:
// the agent is a single binary). The generated table lists common.cl first; the program is their concatenation.
#pragma once
#include <cstddef>

namespace confidant::opencl {

struct EmbeddedClSource {
  const char* name;  // file name, for build-log context
  const char* text;  // not NUL-terminated beyond size
  size_t size;       // bytes
};

extern const EmbeddedClSource kEmbeddedClSources[];
extern const size_t kEmbeddedClSourceCount;

}  // namespace confidant::opencl
