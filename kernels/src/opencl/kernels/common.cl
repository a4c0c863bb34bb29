// Shared definitions, first in the program (cl_sources.h). OpenCL C 1.2: the floor of mobile GPU drivers.
// Tile sizes here must match cl_runtime.h, which launches the kernels.

#ifdef cl_khr_fp16
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#define CONFIDANT_HAVE_FP16 1
#endif

// The test of build-failure reporting (test_opencl_ops.cpp) defines this through CONFIDANT_OPENCL_BUILD_OPTIONS.
#ifdef CONFIDANT_TEST_BUILD_ERROR
#error "deliberate build error requested by CONFIDANT_TEST_BUILD_ERROR"
#endif

#ifndef ATT_MAX_HD
#define ATT_MAX_HD 256
#endif

#define TILE 64         // matmul: output tile per work-group (16 x 16 work-items, 4 x 4 outputs each)
#define TK 32           // matmul: reduction step; equal to the quantisation group, so a W tile row is one group
#define TPAD 4          // matmul: local tile row padding; keeps rows 16-byte aligned for float4 reads
#define ATT 16          // attention: queries x keys per block, and the head-dimension chunk
#define ATT_MAX_CH (ATT_MAX_HD / ATT)
#define NORM_WG 128     // rmsnorm: work-items per row

// A little-endian half at any byte address. Quantised groups are 18 (Q4_0) or 20 (FP4) bytes, so a group's
// halves are not 4-byte aligned in general: assemble the bits from bytes, then convert exactly (subnormals
// included): a register reinterpretation where the device has fp16, else the core vload_half from a private
// copy (no cl_khr_fp16 needed).
inline float load_half_bytes(__global const uchar* p) {
  ushort bits = (ushort)(p[0] | (p[1] << 8));
#ifdef CONFIDANT_HAVE_FP16
  return convert_float(as_half(bits));
#else
  return vload_half(0, (const __private half*)&bits);
#endif
}
