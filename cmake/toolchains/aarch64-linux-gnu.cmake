# Cross toolchain: Linux arm64 (aarch64) with Debian's g++-aarch64-linux-gnu, tests run under qemu-user.
#   cmake -S . -B build/native-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#   cmake --build build/native-arm64 -j 2 && ctest --test-dir build/native-arm64
# (scripts/build-arm64.sh does exactly this and copies the agent to build/agents/arm64-v8a/.)
#
# Every executable is linked fully STATIC (glibc, libstdc++, libgcc): the agent then runs on any arm64 Android
# phone without the NDK (Android has no glibc, so a dynamic glibc binary would not start there). CPU only:
#  - a static glibc binary cannot dlopen the phone's vendor libOpenCL.so (bionic), so the build defines
#    CONFIDANT_STATIC_NO_DLOPEN=1 and the OpenCL loader must report "static build: no OpenCL" instead of trying;
#  - getaddrinfo/getpwnam & co. need NSS modules loaded at run time: don't call them (the agent uses numeric
#    127.0.0.1 only). Threads are fine (glibc >= 2.34 has libpthread inside libc).
# For a dynamic bionic binary that can use OpenCL, build with the NDK (android-agent/README.md).
# Pass -DCONFIDANT_ARM64_STATIC=OFF for an ordinary dynamic glibc build (the emulator then needs -L below).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CONFIDANT_CROSS_TRIPLE aarch64-linux-gnu)
set(CONFIDANT_CROSS_SYSROOT /usr/${CONFIDANT_CROSS_TRIPLE})

find_program(CONFIDANT_CROSS_CXX ${CONFIDANT_CROSS_TRIPLE}-g++)
if(NOT CONFIDANT_CROSS_CXX)
  message(FATAL_ERROR "${CONFIDANT_CROSS_TRIPLE}-g++ not found: apt-get install g++-aarch64-linux-gnu (scripts/setup.sh)")
endif()
set(CMAKE_CXX_COMPILER ${CONFIDANT_CROSS_CXX})
find_program(CONFIDANT_CROSS_CC ${CONFIDANT_CROSS_TRIPLE}-gcc)
if(CONFIDANT_CROSS_CC)
  set(CMAKE_C_COMPILER ${CONFIDANT_CROSS_CC})
endif()

# Headers and libraries from the cross sysroot only; programs (python3, the packer) from the host.
set(CMAKE_FIND_ROOT_PATH ${CONFIDANT_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and add_test COMMANDs naming a target) run the arm64 executables through qemu-user: binfmt_misc is not
# assumed to be registered. The agent tests that spawn the agent binary get the same prefix
# (CONFIDANT_TEST_EMULATOR in android-agent/CMakeLists.txt).
find_program(CONFIDANT_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(CONFIDANT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CONFIDANT_QEMU_AARCH64} -L ${CONFIDANT_CROSS_SYSROOT})
  # qemu-user runs this code 10-50x slower than the host (agent.golden: 1.3 s native, 62 s emulated; the whole
  # suite 5 s vs 65 s): kernels/ and android-agent/ raise their tests' TIMEOUTs when CMAKE_CROSSCOMPILING.
else()
  message(WARNING "qemu-aarch64-static not found: the arm64 tests cannot run here (apt-get install qemu-user-static)")
endif()

option(CONFIDANT_ARM64_STATIC "Link every arm64 executable statically (the agent that runs on Android without the NDK)" ON)
if(CONFIDANT_ARM64_STATIC)
  set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
  set(CMAKE_CXX_FLAGS_INIT "-DCONFIDANT_STATIC_NO_DLOPEN=1")
  set(CMAKE_C_FLAGS_INIT "-DCONFIDANT_STATIC_NO_DLOPEN=1")
endif()
