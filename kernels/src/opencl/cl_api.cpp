// Run-time loading of the OpenCL library (see cl_api.h). Never dlclose()d once loaded: ICD loaders and vendor
// drivers start threads and register atexit handlers, and unloading them under a live process crashes on some
// phones; the handle costs nothing to keep.
#include "cl_api.h"

#include <cstdlib>
#include <vector>

#if defined(_WIN32)
#include <windows.h>
#elif !defined(CONFIDANT_STATIC_NO_DLOPEN)
#include <dlfcn.h>
#endif

namespace confidant::opencl {

namespace {

#if !defined(CONFIDANT_STATIC_NO_DLOPEN)

// Search order: the ICD loader by soname (desktop Linux, and the phones whose linker namespace exposes it), then
// the vendor drivers by absolute path: Qualcomm Adreno ships libOpenCL.so itself, ARM Mali exports the OpenCL API
// from its GLES driver, Imagination from libPVROCL.so.
std::vector<std::string> default_candidates() {
#if defined(_WIN32)
  return {"OpenCL.dll"};
#elif defined(__APPLE__)
  return {"/System/Library/Frameworks/OpenCL.framework/OpenCL"};
#else
#if defined(__LP64__)
#define CONFIDANT_LIBDIR "lib64"
#else
#define CONFIDANT_LIBDIR "lib"
#endif
  return {
      "libOpenCL.so",
      "libOpenCL.so.1",
      "/system/vendor/" CONFIDANT_LIBDIR "/libOpenCL.so",
      "/vendor/" CONFIDANT_LIBDIR "/libOpenCL.so",
      "/system/" CONFIDANT_LIBDIR "/libOpenCL.so",
      "/vendor/" CONFIDANT_LIBDIR "/egl/libGLES_mali.so",
      "/system/vendor/" CONFIDANT_LIBDIR "/egl/libGLES_mali.so",
      "/system/" CONFIDANT_LIBDIR "/egl/libGLES_mali.so",
      "/vendor/" CONFIDANT_LIBDIR "/libGLES_mali.so",
      "/system/vendor/" CONFIDANT_LIBDIR "/libGLES_mali.so",
      "libGLES_mali.so",
      "/vendor/" CONFIDANT_LIBDIR "/libPVROCL.so",
      "/system/vendor/" CONFIDANT_LIBDIR "/libPVROCL.so",
  };
#undef CONFIDANT_LIBDIR
#endif
}

#if defined(_WIN32)
using Handle = HMODULE;
Handle open_library(const std::string& path, std::string* err) {
  Handle h = LoadLibraryA(path.c_str());
  if (!h) *err = "LoadLibrary error " + std::to_string(GetLastError());
  return h;
}
void* find_symbol(Handle h, const char* name) { return reinterpret_cast<void*>(GetProcAddress(h, name)); }
void close_library(Handle h) { FreeLibrary(h); }
#else
using Handle = void*;
Handle open_library(const std::string& path, std::string* err) {
  Handle h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    *err = e ? e : "dlopen failed";
  }
  return h;
}
void* find_symbol(Handle h, const char* name) { return dlsym(h, name); }
void close_library(Handle h) { dlclose(h); }
#endif

// Fills every member from h; returns the name of the first missing function, or nullptr.
const char* resolve_all(Handle h, ClApi* api) {
#define CONFIDANT_CL_RESOLVE(name)                                                  \
  api->name = reinterpret_cast<decltype(api->name)>(find_symbol(h, #name));          \
  if (!api->name) return #name;
  CONFIDANT_CL_FUNCTIONS(CONFIDANT_CL_RESOLVE)
#undef CONFIDANT_CL_RESOLVE
  return nullptr;
}

#endif  // !CONFIDANT_STATIC_NO_DLOPEN

}  // namespace

bool load_cl_api(ClApi* api, std::string* why_not) {
#if defined(CONFIDANT_STATIC_NO_DLOPEN)
  (void)api;
  // A static glibc binary cannot load the phone's bionic vendor driver; the NDK build can (android-agent/README.md).
  if (why_not) *why_not = "static build: no OpenCL (a static binary cannot dlopen the vendor driver)";
  return false;
#else
  std::vector<std::string> candidates;
  const char* override_path = std::getenv("CONFIDANT_OPENCL_LIB");
  const bool overridden = override_path && *override_path;
  if (overridden) candidates.push_back(override_path);
  else candidates = default_candidates();

  std::string tried;
  for (const std::string& path : candidates) {
    std::string err;
    Handle h = open_library(path, &err);
    if (h) {
      ClApi loaded;
      if (const char* missing = resolve_all(h, &loaded)) {
        err = std::string("does not export ") + missing;
        close_library(h);
      } else {
        loaded.library = path;
        *api = loaded;
        return true;  // h intentionally kept open (see the file comment)
      }
    }
    if (err.compare(0, path.size() + 2, path + ": ") == 0) err.erase(0, path.size() + 2);  // dlerror repeats it
    tried += (tried.empty() ? "" : "; ") + path + ": " + err;
  }
  if (why_not) {
    *why_not = overridden ? "CONFIDANT_OPENCL_LIB=" + tried : "no OpenCL library found (" + tried + ")";
  }
  return false;
#endif
}

std::string cl_error_string(cl_int err) {
  const char* name = "unknown OpenCL error";
  switch (err) {
#define CONFIDANT_CL_ERR(e) \
  case e: name = #e; break;
    CONFIDANT_CL_ERR(CL_SUCCESS)
    CONFIDANT_CL_ERR(CL_DEVICE_NOT_FOUND)
    CONFIDANT_CL_ERR(CL_DEVICE_NOT_AVAILABLE)
    CONFIDANT_CL_ERR(CL_COMPILER_NOT_AVAILABLE)
    CONFIDANT_CL_ERR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    CONFIDANT_CL_ERR(CL_OUT_OF_RESOURCES)
    CONFIDANT_CL_ERR(CL_OUT_OF_HOST_MEMORY)
    CONFIDANT_CL_ERR(CL_BUILD_PROGRAM_FAILURE)
    CONFIDANT_CL_ERR(CL_INVALID_VALUE)
    CONFIDANT_CL_ERR(CL_INVALID_DEVICE_TYPE)
    CONFIDANT_CL_ERR(CL_INVALID_PLATFORM)
    CONFIDANT_CL_ERR(CL_INVALID_DEVICE)
    CONFIDANT_CL_ERR(CL_INVALID_CONTEXT)
    CONFIDANT_CL_ERR(CL_INVALID_COMMAND_QUEUE)
    CONFIDANT_CL_ERR(CL_INVALID_HOST_PTR)
    CONFIDANT_CL_ERR(CL_INVALID_MEM_OBJECT)
    CONFIDANT_CL_ERR(CL_INVALID_BUILD_OPTIONS)
    CONFIDANT_CL_ERR(CL_INVALID_PROGRAM)
    CONFIDANT_CL_ERR(CL_INVALID_PROGRAM_EXECUTABLE)
    CONFIDANT_CL_ERR(CL_INVALID_KERNEL_NAME)
    CONFIDANT_CL_ERR(CL_INVALID_KERNEL)
    CONFIDANT_CL_ERR(CL_INVALID_ARG_INDEX)
    CONFIDANT_CL_ERR(CL_INVALID_ARG_VALUE)
    CONFIDANT_CL_ERR(CL_INVALID_ARG_SIZE)
    CONFIDANT_CL_ERR(CL_INVALID_KERNEL_ARGS)
    CONFIDANT_CL_ERR(CL_INVALID_WORK_DIMENSION)
    CONFIDANT_CL_ERR(CL_INVALID_WORK_GROUP_SIZE)
    CONFIDANT_CL_ERR(CL_INVALID_WORK_ITEM_SIZE)
    CONFIDANT_CL_ERR(CL_INVALID_GLOBAL_OFFSET)
    CONFIDANT_CL_ERR(CL_INVALID_EVENT_WAIT_LIST)
    CONFIDANT_CL_ERR(CL_INVALID_OPERATION)
    CONFIDANT_CL_ERR(CL_INVALID_BUFFER_SIZE)
    CONFIDANT_CL_ERR(CL_INVALID_GLOBAL_WORK_SIZE)
#undef CONFIDANT_CL_ERR
    case -1001: name = "CL_PLATFORM_NOT_FOUND_KHR"; break;  // the ICD loader: no driver registered
    default: break;
  }
  return std::string(name) + " (" + std::to_string(err) + ")";
}

}  // namespace confidant::opencl
