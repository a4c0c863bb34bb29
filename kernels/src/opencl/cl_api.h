// The OpenCL entry points the backend uses, loaded at run time into a function table. The library is never linked:
// the agent must start on phones without any OpenCL driver, and vendors put it in different places
// (/vendor/lib64/libOpenCL.so on Adreno, libGLES_mali.so on Mali, ...). The Khronos headers (vendored in
// third_party/, targeting OpenCL 1.2 because mobile GPUs are 1.2, 2.0 or 3.0) give types and signatures only.
#pragma once
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include <stdexcept>
#include <string>

namespace confidant::opencl {

// Only the functions the backend calls: a driver missing one of them is rejected as a whole.
#define CONFIDANT_CL_FUNCTIONS(X) \
  X(clGetPlatformIDs)             \
  X(clGetPlatformInfo)            \
  X(clGetDeviceIDs)               \
  X(clGetDeviceInfo)              \
  X(clCreateContext)              \
  X(clReleaseContext)             \
  X(clCreateCommandQueue)         \
  X(clReleaseCommandQueue)        \
  X(clCreateProgramWithSource)    \
  X(clBuildProgram)               \
  X(clGetProgramBuildInfo)        \
  X(clReleaseProgram)             \
  X(clCreateKernel)               \
  X(clReleaseKernel)              \
  X(clSetKernelArg)               \
  X(clGetKernelWorkGroupInfo)     \
  X(clCreateBuffer)               \
  X(clReleaseMemObject)           \
  X(clEnqueueWriteBuffer)         \
  X(clEnqueueReadBuffer)          \
  X(clEnqueueNDRangeKernel)       \
  X(clFlush)                      \
  X(clFinish)

// Members carry the OpenCL names, so calls read as api.clFinish(queue).
struct ClApi {
#define CONFIDANT_CL_MEMBER(name) decltype(&::name) name = nullptr;
  CONFIDANT_CL_FUNCTIONS(CONFIDANT_CL_MEMBER)
#undef CONFIDANT_CL_MEMBER
  std::string library;  // the path or soname it was loaded from
};

// Loads the first OpenCL library that opens and exports every function above. The environment variable
// CONFIDANT_OPENCL_LIB, when set and non-empty, is the only path tried (tests point it at a missing file).
// The library stays loaded for the life of the process (see cl_api.cpp). Returns false and fills why_not
// (every path tried, with the loader's error) when none works.
bool load_cl_api(ClApi* api, std::string* why_not);

// "CL_OUT_OF_RESOURCES (-5)".
std::string cl_error_string(cl_int err);

// Thrown by the backend when an OpenCL call fails after set-up (ops have no error return).
struct ClError : std::runtime_error {
  ClError(const char* what_call, cl_int err)
      : std::runtime_error(std::string("opencl: ") + what_call + " failed: " + cl_error_string(err)) {}
};
inline void cl_check(cl_int err, const char* what_call) {
  if (err != CL_SUCCESS) throw ClError(what_call, err);
}

}  // namespace confidant::opencl
