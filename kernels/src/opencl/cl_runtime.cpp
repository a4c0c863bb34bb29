// Device choice, context, queue and the one-time program build (see cl_runtime.h).
#include "cl_runtime.h"

#include <cstdlib>
#include <vector>

#include "cl_sources.h"

namespace confidant::opencl {

namespace {

struct KernelSpec {
  const char* name;
  size_t work_group;  // work-items per group the host launches it with
};

constexpr size_t kTileItems = size_t(kTileWg) * kTileWg;

// Indexed by Kernel.
constexpr KernelSpec kKernels[] = {
    {"linear_fwd_f32", kTileItems},   {"linear_fwd_f16", kTileItems},     {"linear_fwd_q4_0", kTileItems},
    {"linear_fwd_fp4", kTileItems},   {"linear_bwd_f32", kTileItems},     {"linear_bwd_f16", kTileItems},
    {"linear_bwd_q4_0", kTileItems},  {"linear_bwd_fp4", kTileItems},     {"matmul_tn", kTileItems},
    {"rope_apply", kPointwiseWg},     {"attention_fwd", kTileItems},      {"attention_bwd_d", kPointwiseWg},
    {"attention_bwd_dq", kTileItems}, {"attention_bwd_dkv", kTileItems},  {"rmsnorm_fwd", kNormWg},
    {"rmsnorm_bwd_dx", kNormWg},      {"rmsnorm_bwd_dw", kPointwiseWg},   {"swiglu_fwd", kPointwiseWg},
    {"swiglu_bwd", kPointwiseWg},     {"residual_fwd", kPointwiseWg},     {"add_into", kPointwiseWg},
};
static_assert(sizeof(kKernels) / sizeof(kKernels[0]) == static_cast<size_t>(Kernel::kCount),
              "one KernelSpec per Kernel");

std::string device_string(const ClApi& api, cl_device_id d, cl_device_info what) {
  size_t n = 0;
  if (api.clGetDeviceInfo(d, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
  std::string s(n, '\0');
  api.clGetDeviceInfo(d, what, n, s.data(), nullptr);
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

template <typename T>
T device_value(const ClApi& api, cl_device_id d, cl_device_info what) {
  T v{};
  api.clGetDeviceInfo(d, what, sizeof(T), &v, nullptr);
  return v;
}

// "OpenCL 3.0 PoCL HSTR: ..." -> "OpenCL 3.0".
std::string short_version(const std::string& v) {
  const size_t first = v.find(' ');
  if (first == std::string::npos) return v;
  const size_t second = v.find(' ', first + 1);
  return second == std::string::npos ? v : v.substr(0, second);
}

// The first GPU of any platform, else the first device of any type. Phones have one platform and one GPU; a
// desktop may list a CPU runtime (PoCL) next to a GPU one, and the GPU is what the backend is for.
bool pick_device(const ClApi& api, cl_platform_id* platform, cl_device_id* device, std::string* why_not) {
  cl_uint np = 0;
  cl_int err = api.clGetPlatformIDs(0, nullptr, &np);
  if (err != CL_SUCCESS || np == 0) {
    *why_not = "no OpenCL platform (" + api.library + ": clGetPlatformIDs: " +
               (err != CL_SUCCESS ? cl_error_string(err) : std::string("0 platforms")) + ")";
    return false;
  }
  std::vector<cl_platform_id> platforms(np);
  api.clGetPlatformIDs(np, platforms.data(), nullptr);
  for (cl_device_type type : {cl_device_type(CL_DEVICE_TYPE_GPU), cl_device_type(CL_DEVICE_TYPE_ALL)}) {
    for (cl_platform_id p : platforms) {
      cl_device_id d = nullptr;
      cl_uint nd = 0;
      if (api.clGetDeviceIDs(p, type, 1, &d, &nd) == CL_SUCCESS && nd > 0 && d) {
        *platform = p;
        *device = d;
        return true;
      }
    }
  }
  *why_not = "no OpenCL device on " + std::to_string(np) + " platform(s) (" + api.library + ")";
  return false;
}

}  // namespace

const char* kernel_name(Kernel k) { return kKernels[static_cast<int>(k)].name; }

std::unique_ptr<ClRuntime> ClRuntime::create(std::string* why_not) {
  std::unique_ptr<ClRuntime> rt(new ClRuntime());
  std::string reason;
  if (!rt->init(&reason)) {
    if (why_not) *why_not = reason;
    return nullptr;
  }
  return rt;
}

bool ClRuntime::init(std::string* why_not) {
  if (!load_cl_api(&api_, why_not)) return false;
  if (!pick_device(api_, &platform_, &device_, why_not)) return false;

  info_.name = device_string(api_, device_, CL_DEVICE_NAME);
  info_.version = short_version(device_string(api_, device_, CL_DEVICE_VERSION));
  const cl_device_type type = device_value<cl_device_type>(api_, device_, CL_DEVICE_TYPE);
  info_.gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
  info_.type = info_.gpu                                ? "gpu"
               : (type & CL_DEVICE_TYPE_CPU) != 0         ? "cpu"
               : (type & CL_DEVICE_TYPE_ACCELERATOR) != 0 ? "accelerator"
                                                          : "other";
  info_.compute_units = device_value<cl_uint>(api_, device_, CL_DEVICE_MAX_COMPUTE_UNITS);
  info_.max_work_group = device_value<size_t>(api_, device_, CL_DEVICE_MAX_WORK_GROUP_SIZE);
  info_.local_mem_bytes = device_value<cl_ulong>(api_, device_, CL_DEVICE_LOCAL_MEM_SIZE);
  info_.max_alloc_bytes = device_value<cl_ulong>(api_, device_, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
  info_.global_mem_bytes = device_value<cl_ulong>(api_, device_, CL_DEVICE_GLOBAL_MEM_SIZE);
  const std::string where = info_.name + " (" + api_.library + ")";

  cl_int err = CL_SUCCESS;
  const cl_context_properties props[] = {CL_CONTEXT_PLATFORM, reinterpret_cast<cl_context_properties>(platform_), 0};
  context_ = api_.clCreateContext(props, 1, &device_, nullptr, nullptr, &err);
  if (!context_) {
    *why_not = "clCreateContext on " + where + ": " + cl_error_string(err);
    return false;
  }
  // In order: every op's upload, kernels and read-back run in issue order, which is what makes the host-pointer
  // bookkeeping of cl_memory.h correct without events.
  queue_ = api_.clCreateCommandQueue(context_, device_, 0, &err);
  if (!queue_) {
    *why_not = "clCreateCommandQueue on " + where + ": " + cl_error_string(err);
    return false;
  }
  if (!build_program(why_not)) return false;

  for (int i = 0; i < static_cast<int>(Kernel::kCount); ++i) {
    const KernelSpec& spec = kKernels[i];
    kernels_[i] = api_.clCreateKernel(program_, spec.name, &err);
    if (!kernels_[i]) {
      *why_not = std::string("clCreateKernel(") + spec.name + ") on " + where + ": " + cl_error_string(err);
      return false;
    }
    size_t wg = 0;
    cl_ulong local = 0;
    api_.clGetKernelWorkGroupInfo(kernels_[i], device_, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, nullptr);
    api_.clGetKernelWorkGroupInfo(kernels_[i], device_, CL_KERNEL_LOCAL_MEM_SIZE, sizeof local, &local, nullptr);
    local_bytes_[i] = local;
    if (wg != 0 && wg < spec.work_group) {
      *why_not = std::string("kernel ") + spec.name + " needs " + std::to_string(spec.work_group) +
                 " work-items per group, " + where + " allows " + std::to_string(wg);
      return false;
    }
    if (info_.local_mem_bytes != 0 && local > info_.local_mem_bytes) {
      *why_not = std::string("kernel ") + spec.name + " needs " + std::to_string(local) + " bytes of local memory, " +
                 where + " has " + std::to_string(info_.local_mem_bytes);
      return false;
    }
  }
  return true;
}

bool ClRuntime::build_program(std::string* why_not) {
  std::vector<const char*> texts;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < kEmbeddedClSourceCount; ++i) {
    texts.push_back(kEmbeddedClSources[i].text);
    sizes.push_back(kEmbeddedClSources[i].size);
  }
  cl_int err = CL_SUCCESS;
  program_ = api_.clCreateProgramWithSource(context_, static_cast<cl_uint>(texts.size()), texts.data(), sizes.data(),
                                            &err);
  if (!program_) {
    *why_not = "clCreateProgramWithSource: " + cl_error_string(err);
    return false;
  }
  // CL1.2 is the common floor of the phones' drivers; no fast-math flags, the kernels are checked against the
  // fp32 reference. CONFIDANT_UNROLL: see attention.cl.
  std::string options = "-cl-std=CL1.2 -DATT_MAX_HD=" + std::to_string(kAttMaxHeadDim);
  if (info_.gpu) options += " -DCONFIDANT_UNROLL=1";
  // Extra options from the environment, for experiments on a phone and for the build-failure test.
  if (const char* extra = std::getenv("CONFIDANT_OPENCL_BUILD_OPTIONS")) options += std::string(" ") + extra;
  err = api_.clBuildProgram(program_, 1, &device_, options.c_str(), nullptr, nullptr);
  if (err != CL_SUCCESS) {
    size_t n = 0;
    api_.clGetProgramBuildInfo(program_, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
    std::string log(n, '\0');
    if (n) api_.clGetProgramBuildInfo(program_, device_, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    constexpr size_t kMaxLog = 8000;  // enough for the first errors; a whole log can be megabytes of warnings
    if (log.size() > kMaxLog) log = log.substr(0, kMaxLog) + "\n[... build log truncated]";
    *why_not = "OpenCL kernels failed to build on " + info_.name + ": " + cl_error_string(err) + "\nbuild log:\n" + log;
    return false;
  }
  return true;
}

ClRuntime::~ClRuntime() {
  for (cl_kernel k : kernels_)
    if (k) api_.clReleaseKernel(k);
  if (program_) api_.clReleaseProgram(program_);
  if (queue_) {
    api_.clFinish(queue_);
    api_.clReleaseCommandQueue(queue_);
  }
  if (context_) api_.clReleaseContext(context_);
}

}  // namespace confidant::opencl
