#!/usr/bin/env bash
# Cross-builds the native code (kernels + agent + their tests) for Linux arm64 into build/native-arm64 with
# cmake/toolchains/aarch64-linux-gnu.cmake: every executable statically linked, so the agent runs on any arm64
# Android phone without the NDK (CPU only). Then puts the arm64 agent at build/agents/arm64-v8a/confidant-agent, the
# per-ABI layout the packaged app uses (agents/<abi>/confidant-agent): the NDK build when there is one
# (build/native-android-arm64, see android-agent/README.md: bionic, can use the phone's OpenCL), else the static one
# (CONFIDANT_ARM64_AGENT=static forces the static one). Tests: ctest --test-dir build/native-arm64, run through
# qemu-aarch64-static (scripts/test.mjs does it).
#
# No cross compiler: a loud SKIP and exit 0 locally, a failure (exit 1) when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=build/native-arm64
OUT_DIR=build/agents/arm64-v8a
NDK_AGENT=build/native-android-arm64/android-agent/confidant-agent
CXX_CROSS=aarch64-linux-gnu-g++

# Copies $1 to $OUT_DIR/confidant-agent through a temporary file (a half-written binary is never pushed), stripped
# with $2 when given.
install_agent() {
  local src=$1 strip=${2:-} tmp="$OUT_DIR/confidant-agent.tmp"
  mkdir -p "$OUT_DIR"
  if [ -n "$strip" ]; then "$strip" -o "$tmp" "$src"; else cp "$src" "$tmp"; fi
  chmod 0755 "$tmp"
  mv -f "$tmp" "$OUT_DIR/confidant-agent"
}

use_ndk_agent() {
  [ -f "$NDK_AGENT" ] && [ "${CONFIDANT_ARM64_AGENT:-}" != "static" ] || return 1
  local llvm_strip
  llvm_strip=$(ls "${ANDROID_NDK:-/nonexistent}"/toolchains/llvm/prebuilt/*/bin/llvm-strip 2>/dev/null | head -n 1 || true)
  install_agent "$NDK_AGENT" "$llvm_strip"
  echo "build-arm64: $OUT_DIR/confidant-agent: the NDK build ($NDK_AGENT; bionic, OpenCL-capable)"
}

if ! command -v "$CXX_CROSS" >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "build-arm64: FAILED: $CXX_CROSS not found and CI=true (apt-get install g++-aarch64-linux-gnu; scripts/setup.sh does)" >&2
    exit 1
  fi
  echo "################################################################################" >&2
  echo "## SKIP arm64 static build: $CXX_CROSS not found (apt-get install g++-aarch64-linux-gnu)" >&2
  echo "## No static arm64 agent and no arm64 tests; run scripts/setup.sh to get the cross compiler." >&2
  echo "################################################################################" >&2
  use_ndk_agent || true
  exit 0
fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" >/dev/null
cmake --build "$BUILD_DIR" -j "${CONFIDANT_BUILD_JOBS:-2}"

if ! use_ndk_agent; then
  strip_tool=$(command -v aarch64-linux-gnu-strip || true)
  install_agent "$BUILD_DIR/android-agent/confidant-agent" "$strip_tool"
  echo "build-arm64: $OUT_DIR/confidant-agent: the static build ($BUILD_DIR; glibc, CPU only)"
fi
