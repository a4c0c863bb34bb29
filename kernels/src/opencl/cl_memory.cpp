// Weight cache, activation pool and per-batch residency (see cl_memory.h).
#include "cl_memory.h"

#include <cstring>

namespace confidant::opencl {

namespace {

constexpr size_t kPoolGranuleBytes = 4096;               // pooled sizes are rounded up to this
constexpr size_t kIdlePoolBytes = size_t(256) << 20;     // idle pooled memory kept across batches
constexpr size_t kFingerprintSampleBytes = 16;

// FNV-1a over the size and three samples (start, middle, end). Few bytes on purpose: the pages of a weight that
// is on the device may have been reclaimed, and every sample can cost a page-in.
uint64_t fingerprint(const void* host, size_t bytes) {
  const unsigned char* p = static_cast<const unsigned char*>(host);
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const unsigned char* q, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ q[i]) * 1099511628211ull;
  };
  mix(reinterpret_cast<const unsigned char*>(&bytes), sizeof bytes);
  const size_t n = bytes < kFingerprintSampleBytes ? bytes : kFingerprintSampleBytes;
  mix(p, n);
  mix(p + (bytes - n) / 2, n);
  mix(p + bytes - n, n);
  return h;
}

bool overlaps(const char* a, size_t an, const char* b, size_t bn) { return a < b + bn && b < a + an; }

}  // namespace

ClMemory::ClMemory(const ClApi& api, cl_context context, cl_command_queue queue, size_t weight_budget_bytes)
    : api_(api), context_(context), queue_(queue), weight_budget_bytes_(weight_budget_bytes) {}

ClMemory::~ClMemory() {
  for (auto& [key, e] : weights_) api_.clReleaseMemObject(e.mem);
  for (auto& [cap, mem] : in_use_) api_.clReleaseMemObject(mem);
  for (auto& [cap, mem] : free_) api_.clReleaseMemObject(mem);
}

cl_mem ClMemory::weight(const void* host, size_t bytes) {
  const auto key = std::make_pair(host, bytes);
  const uint64_t fp = fingerprint(host, bytes);
  auto it = weights_.find(key);
  if (it != weights_.end()) {
    if (it->second.fingerprint == fp) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.mem;
    }
    // Other bytes at the same address: a different weight now lives there. Releasing is safe even if queued
    // kernels still use the buffer (OpenCL keeps it alive until they finish).
    api_.clReleaseMemObject(it->second.mem);
    weight_bytes_ -= bytes;
    lru_.erase(it->second.lru);
    weights_.erase(it);
  }
  cl_int err = CL_SUCCESS;
  cl_mem mem = api_.clCreateBuffer(context_, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, const_cast<void*>(host),
                                   &err);
  cl_check(err, "clCreateBuffer(weight)");
  lru_.push_front(key);
  weights_[key] = WeightEntry{mem, fp, lru_.begin()};
  weight_bytes_ += bytes;
  evict_weights();
  return mem;
}

void ClMemory::evict_weights() {
  while (weight_bytes_ > weight_budget_bytes_ && lru_.size() > 1) {
    const auto key = lru_.back();
    lru_.pop_back();
    auto it = weights_.find(key);
    api_.clReleaseMemObject(it->second.mem);
    weight_bytes_ -= key.second;
    weights_.erase(it);
  }
}

cl_mem ClMemory::acquire(size_t bytes) {
  const size_t need = (bytes + kPoolGranuleBytes - 1) / kPoolGranuleBytes * kPoolGranuleBytes;
  auto it = free_.lower_bound(need);
  // Best fit, but not a buffer more than twice too big (that would pin large buffers under small tensors).
  if (it != free_.end() && it->first <= 2 * need) {
    in_use_.emplace_back(*it);
    free_bytes_ -= it->first;
    free_.erase(it);
    return in_use_.back().second;
  }
  cl_int err = CL_SUCCESS;
  cl_mem mem = api_.clCreateBuffer(context_, CL_MEM_READ_WRITE, need, nullptr, &err);
  cl_check(err, "clCreateBuffer");
  in_use_.emplace_back(need, mem);
  return mem;
}

ClMemory::Resident* ClMemory::find_resident(const void* host, size_t bytes) {
  for (Resident& r : resident_)
    if (r.host == host && r.bytes == bytes) return &r;
  return nullptr;
}

void ClMemory::drop_overlapping(const void* host, size_t bytes, cl_mem keep) {
  const char* h = static_cast<const char*>(host);
  for (size_t i = 0; i < resident_.size();) {
    const Resident& r = resident_[i];
    const bool same = r.host == h && r.bytes == bytes && r.mem == keep;
    if (!same && overlaps(r.host, r.bytes, h, bytes)) {
      resident_[i] = resident_.back();
      resident_.pop_back();
    } else {
      ++i;
    }
  }
}

cl_mem ClMemory::input(const void* host, size_t bytes) {
  if (Resident* r = find_resident(host, bytes)) return r->mem;
  cl_mem mem = acquire(bytes);
  // Non-blocking: the host must leave the range alone until synchronize() (the backend.h contract).
  cl_check(api_.clEnqueueWriteBuffer(queue_, mem, CL_FALSE, 0, bytes, host, 0, nullptr, nullptr),
           "clEnqueueWriteBuffer");
  resident_.push_back(Resident{static_cast<const char*>(host), bytes, mem});
  return mem;
}

cl_mem ClMemory::output(void* host, size_t bytes, bool keep_contents) {
  cl_mem mem = nullptr;
  if (keep_contents) {
    mem = input(host, bytes);
  } else if (Resident* r = find_resident(host, bytes)) {
    mem = r->mem;  // in-place ops (out == in) read and write the same buffer
  } else {
    mem = acquire(bytes);
    resident_.push_back(Resident{static_cast<const char*>(host), bytes, mem});
  }
  drop_overlapping(host, bytes, mem);
  return mem;
}

void ClMemory::read_back(cl_mem buf, void* host, size_t bytes) {
  cl_check(api_.clEnqueueReadBuffer(queue_, buf, CL_FALSE, 0, bytes, host, 0, nullptr, nullptr),
           "clEnqueueReadBuffer");
}

cl_mem ClMemory::scratch(size_t bytes) { return acquire(bytes); }

void ClMemory::end_batch() {
  resident_.clear();
  for (auto& [cap, mem] : in_use_) {
    free_.emplace(cap, mem);
    free_bytes_ += cap;
  }
  in_use_.clear();
  while (free_bytes_ > kIdlePoolBytes) {  // drop the largest idle buffers first
    auto last = std::prev(free_.end());
    free_bytes_ -= last->first;
    api_.clReleaseMemObject(last->second);
    free_.erase(last);
  }
}

}  // namespace confidant::opencl
