# The CPU backend (threads + SIMD chosen at run time). Every .cpp in this folder is part of it, except the per-SIMD-
# level micro-kernels (matmul_<level>.cpp, attention_avx2.cpp), which are added only for their architecture and compiled with that
# level's -m flags; only code reached after the run-time check (simd_level.cpp) executes them, so one binary runs
# on any CPU of the architecture.
set(_cpu ${CMAKE_CURRENT_LIST_DIR})
file(GLOB _cpu_sources CONFIGURE_DEPENDS ${_cpu}/*.cpp)
set(_cpu_simd_sources ${_cpu}/matmul_avx2.cpp ${_cpu}/matmul_avx512.cpp ${_cpu}/matmul_neon.cpp ${_cpu}/attention_avx2.cpp)
list(REMOVE_ITEM _cpu_sources ${_cpu_simd_sources})
target_sources(confidant_kernels PRIVATE ${_cpu_sources})

if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    target_sources(confidant_kernels PRIVATE ${_cpu}/matmul_avx2.cpp ${_cpu}/matmul_avx512.cpp ${_cpu}/attention_avx2.cpp)
    set_source_files_properties(${_cpu}/matmul_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
    set_source_files_properties(${_cpu}/attention_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
    set_source_files_properties(${_cpu}/matmul_avx512.cpp PROPERTIES COMPILE_OPTIONS
      "-mavx512f;-mavx2;-mfma;-mf16c;-Wno-uninitialized;$<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>")  # GCC 12: false alarms inside avx512fintrin.h
    target_compile_definitions(confidant_kernels PRIVATE CONFIDANT_CPU_X86=1)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    # Advanced SIMD and fp16 conversions are in the arm64 base ISA: no extra flags.
    target_sources(confidant_kernels PRIVATE ${_cpu}/matmul_neon.cpp)
    target_compile_definitions(confidant_kernels PRIVATE CONFIDANT_CPU_NEON=1)
  endif()
endif()
