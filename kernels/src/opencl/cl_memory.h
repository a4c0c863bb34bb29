// Device memory for the OpenCL backend, whose ops take host pointers (backend.h):
//  - weights: a one-time device copy of each read-only weight view, found again by host address + size. A copy,
//    not CL_MEM_USE_HOST_PTR: views of one matrix overlap (row/column slices), which USE_HOST_PTR leaves
//    undefined, and drivers want host pointers aligned in ways an mmapped stage file does not promise. The
//    mapped pages are clean file pages, so the kernel can reclaim them under pressure: the copy does not double
//    the resident memory. Because an address can be reused (a stage unloaded, another mapped in its place), each
//    entry keeps a fingerprint of a few sampled bytes and is re-made when they differ; least recently used
//    entries are dropped beyond a byte budget.
//  - activations, per batch (the ops between two synchronize() calls): a host range gets a pooled device buffer
//    and a non-blocking upload; the range then stays "resident", so a later op of the batch reading the same
//    range (an output of an earlier op, or an input used twice) reuses the buffer instead of uploading again.
//    An op writing a range makes every other resident range it overlaps stale (dropped). Outputs are read back
//    with non-blocking reads right after the kernel. All of it relies on the queue being in order.
//  - end_batch() (after clFinish) forgets every host range, since the host may change them from then on, and
//    returns the batch's buffers to the pool.
// Not thread-safe: one backend is driven by one thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <utility>
#include <vector>

#include "cl_api.h"

namespace confidant::opencl {

class ClMemory {
 public:
  ClMemory(const ClApi& api, cl_context context, cl_command_queue queue, size_t weight_budget_bytes);
  ~ClMemory();  // releases every buffer; the queue must have finished
  ClMemory(const ClMemory&) = delete;
  ClMemory& operator=(const ClMemory&) = delete;

  // The device copy of host[0, bytes) of a read-only weight (created on first use, blocking).
  cl_mem weight(const void* host, size_t bytes);
  // A buffer holding host[0, bytes): the resident one of this batch, else a pooled one with an upload enqueued.
  cl_mem input(const void* host, size_t bytes);
  // The buffer an op writes host[0, bytes) into. keep_contents (accumulating outputs, +=) starts it as input();
  // otherwise its contents are undefined until the kernel writes them.
  cl_mem output(void* host, size_t bytes, bool keep_contents);
  // Enqueues the non-blocking copy of buf[0, bytes) to host.
  void read_back(cl_mem buf, void* host, size_t bytes);
  // Device-only memory until the end of the batch.
  cl_mem scratch(size_t bytes);
  // Call after clFinish (see the file comment).
  void end_batch();

  size_t weight_bytes() const { return weight_bytes_; }

 private:
  struct Resident {
    const char* host;
    size_t bytes;
    cl_mem mem;
  };
  struct WeightEntry {
    cl_mem mem;
    uint64_t fingerprint;
    std::list<std::pair<const void*, size_t>>::iterator lru;  // position in lru_
  };

  cl_mem acquire(size_t bytes);
  Resident* find_resident(const void* host, size_t bytes);
  void drop_overlapping(const void* host, size_t bytes, cl_mem keep);
  void evict_weights();

  const ClApi& api_;
  cl_context context_;
  cl_command_queue queue_;

  size_t weight_budget_bytes_, weight_bytes_ = 0;
  std::map<std::pair<const void*, size_t>, WeightEntry> weights_;
  std::list<std::pair<const void*, size_t>> lru_;  // most recently used first

  std::vector<Resident> resident_;
  std::vector<std::pair<size_t, cl_mem>> in_use_;  // (capacity, buffer) acquired during this batch
  std::multimap<size_t, cl_mem> free_;             // idle pooled buffers by capacity
  size_t free_bytes_ = 0;
};

}  // namespace confidant::opencl
