// Per-thread scratch memory for the matmuls: 64-byte aligned, grown on demand and kept for the thread's lifetime,
// so steady-state training steps allocate nothing (the pool's threads live as long as the backend).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <stdlib.h>
#include <new>

namespace confidant::cpu {

enum class ScratchSlot { PackedActivations, WeightPanel, Tile, Temp, kCount };

class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(p_); }
  // At least n floats; the contents are undefined (not preserved when it grows).
  float* floats(size_t n) {
    if (n > cap_) {
      std::free(p_);
      const size_t bytes = (n * sizeof(float) + 63) & ~size_t(63);
      // posix_memalign, not std::aligned_alloc: bionic has the latter only from API 28 (we target 26).
      void* mem = nullptr;
      p_ = posix_memalign(&mem, 64, bytes) == 0 ? static_cast<float*>(mem) : nullptr;
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

// The calling thread's buffer for slot.
inline float* thread_scratch(ScratchSlot slot, size_t n) {
  thread_local ScratchBuffer buffers[static_cast<int>(ScratchSlot::kCount)];
  return buffers[static_cast<int>(slot)].floats(n);
}

}  // namespace confidant::cpu
