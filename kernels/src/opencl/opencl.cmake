# The OpenCL backend (make_opencl_backend): loaded at run time, never linked, so the library and the agent run
# on phones without an OpenCL driver. Included from kernels/CMakeLists.txt; adds to confidant_kernels:
#  - the host code (cl_api: dlopen + function table; cl_runtime: device, queue, program; cl_memory: buffers;
#    opencl_backend: the ops), compiled against the vendored Khronos headers in third_party/ (types only);
#  - kernels/*.cl embedded at build time as byte arrays (embed_cl.cmake) into opencl_cl_sources.cpp.
# Static arm64 builds define CONFIDANT_STATIC_NO_DLOPEN (cmake/toolchains/aarch64-linux-gnu.cmake): the loader
# then reports "static build: no OpenCL" without trying.
set(CONFIDANT_OPENCL_DIR ${CMAKE_CURRENT_LIST_DIR})

# Order matters: common.cl defines what the others use, and the program is their concatenation.
set(CONFIDANT_OPENCL_CL_SOURCES
  ${CONFIDANT_OPENCL_DIR}/kernels/common.cl
  ${CONFIDANT_OPENCL_DIR}/kernels/linear.cl
  ${CONFIDANT_OPENCL_DIR}/kernels/attention.cl
  ${CONFIDANT_OPENCL_DIR}/kernels/norm.cl
  ${CONFIDANT_OPENCL_DIR}/kernels/pointwise.cl
)
set(CONFIDANT_OPENCL_GENERATED ${CMAKE_CURRENT_BINARY_DIR}/opencl_cl_sources.cpp)
string(REPLACE ";" "|" CONFIDANT_OPENCL_CL_LIST "${CONFIDANT_OPENCL_CL_SOURCES}")
add_custom_command(
  OUTPUT ${CONFIDANT_OPENCL_GENERATED}
  COMMAND ${CMAKE_COMMAND} -DOUT=${CONFIDANT_OPENCL_GENERATED} -DSOURCES=${CONFIDANT_OPENCL_CL_LIST}
          -P ${CONFIDANT_OPENCL_DIR}/embed_cl.cmake
  DEPENDS ${CONFIDANT_OPENCL_CL_SOURCES} ${CONFIDANT_OPENCL_DIR}/embed_cl.cmake
  COMMENT "Embedding the OpenCL kernels"
  VERBATIM)

target_sources(confidant_kernels PRIVATE
  ${CONFIDANT_OPENCL_DIR}/cl_api.cpp
  ${CONFIDANT_OPENCL_DIR}/cl_runtime.cpp
  ${CONFIDANT_OPENCL_DIR}/cl_memory.cpp
  ${CONFIDANT_OPENCL_DIR}/opencl_backend.cpp
  ${CONFIDANT_OPENCL_GENERATED}
)
target_include_directories(confidant_kernels PRIVATE ${CONFIDANT_OPENCL_DIR} ${CONFIDANT_OPENCL_DIR}/third_party)
target_link_libraries(confidant_kernels PUBLIC ${CMAKE_DL_LIBS})

# Every native op against the reference backend, on whatever OpenCL device the machine has (PoCL on CI).
if(NOT ANDROID)
  add_executable(kernels_test_opencl_ops ${CMAKE_CURRENT_SOURCE_DIR}/test/test_opencl_ops.cpp)
  target_link_libraries(kernels_test_opencl_ops PRIVATE confidant_kernels)
  if(CMAKE_CROSSCOMPILING)
    # No OpenCL under qemu: the test then skips even on CI (see the test's main).
    target_compile_definitions(kernels_test_opencl_ops PRIVATE CONFIDANT_TEST_CROSS_COMPILED=1)
  endif()
  add_test(NAME kernels.opencl_ops COMMAND kernels_test_opencl_ops)
  set_tests_properties(kernels.opencl_ops PROPERTIES TIMEOUT 180)
endif()
