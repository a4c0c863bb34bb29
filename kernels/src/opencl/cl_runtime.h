// One OpenCL device ready to run the backend's kernels: the loaded API, the chosen device (a GPU when there is one,
// else any device), a context, one in-order queue and the program built once from the embedded .cl sources
// (cl_sources.h). Creation fails with a reason rather than half-working: missing library, no platform or device,
// a build error (with the build log), or a device too small for the kernels' work-groups or local memory.
// Environment: CONFIDANT_OPENCL_LIB (cl_api.h), CONFIDANT_OPENCL_BUILD_OPTIONS (appended to the build options).
#pragma once
#include <memory>
#include <string>

#include "cl_api.h"

namespace confidant::opencl {

// Every kernel of the program, with the work-group size the host launches it with.
enum class Kernel : int {
  kLinearFwdF32, kLinearFwdF16, kLinearFwdQ4_0, kLinearFwdFp4,
  kLinearBwdF32, kLinearBwdF16, kLinearBwdQ4_0, kLinearBwdFp4,
  kMatmulTn,
  kRope,
  kAttentionFwd, kAttentionBwdD, kAttentionBwdDq, kAttentionBwdDkv,
  kRmsnormFwd, kRmsnormBwdDx, kRmsnormBwdDw,
  kSwigluFwd, kSwigluBwd, kResidualFwd, kAddInto,
  kCount
};
const char* kernel_name(Kernel k);

// Work-group shapes shared with the .cl files (their reqd_work_group_size attributes).
constexpr int kTileWg = 16;      // matmul and attention: 16 x 16 work-items
constexpr int kTile = 64;        // matmul output tile per work-group (4 x 4 per work-item)
constexpr int kAttTile = 16;     // attention: 16 queries x 16 keys per block
constexpr int kAttMaxHeadDim = 256;
constexpr int kNormWg = 128;     // rmsnorm: one work-group per row
constexpr int kPointwiseWg = 64;

struct DeviceInfo {
  std::string name;       // CL_DEVICE_NAME
  std::string version;    // "OpenCL 3.0" (the first two words of CL_DEVICE_VERSION)
  bool gpu = false;
  std::string type;       // CL_DEVICE_TYPE: "gpu", "cpu", "accelerator" or "other" (BackendInfo::device_type)
  cl_uint compute_units = 0;
  size_t max_work_group = 0;
  cl_ulong local_mem_bytes = 0, max_alloc_bytes = 0, global_mem_bytes = 0;
};

class ClRuntime {
 public:
  static std::unique_ptr<ClRuntime> create(std::string* why_not);
  ~ClRuntime();
  ClRuntime(const ClRuntime&) = delete;
  ClRuntime& operator=(const ClRuntime&) = delete;

  const ClApi& api() const { return api_; }
  const DeviceInfo& device() const { return info_; }
  cl_context context() const { return context_; }
  cl_command_queue queue() const { return queue_; }
  cl_kernel kernel(Kernel k) const { return kernels_[static_cast<int>(k)]; }
  // Local memory a kernel declares itself (CL_KERNEL_LOCAL_MEM_SIZE), before any __local argument.
  cl_ulong kernel_local_bytes(Kernel k) const { return local_bytes_[static_cast<int>(k)]; }

 private:
  ClRuntime() = default;
  bool init(std::string* why_not);
  bool build_program(std::string* why_not);

  ClApi api_;
  DeviceInfo info_;
  cl_platform_id platform_ = nullptr;
  cl_device_id device_ = nullptr;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  cl_program program_ = nullptr;
  cl_kernel kernels_[static_cast<int>(Kernel::kCount)] = {};
  cl_ulong local_bytes_[static_cast<int>(Kernel::kCount)] = {};
};

}  // namespace confidant::opencl
