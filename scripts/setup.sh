#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine with Node 20: system packages, npm dependencies (no downloads
# beyond the npm registry and Debian), then the native and TypeScript builds. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: compiler + cmake for the agent and kernels, the real adb server, Chromium for UI tests; the arm64
# cross compiler and qemu-user for the arm64 agent and its tests (scripts/build-arm64.sh); an OpenCL ICD loader,
# headers and pocl (a CPU OpenCL driver) for the OpenCL backend's tests, and clinfo to see what OpenCL finds; clang
# with compiler-rt (libFuzzer, ASan, UBSan runtimes) for the agent's fuzz tier (scripts/fuzz.sh).
need=()
for pkg in cmake g++ make python3 adb chromium \
           g++-aarch64-linux-gnu qemu-user-static clang libclang-rt-dev \
           pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Nothing may download outside the npm registry: Electron's binary, ORT's CUDA, Playwright's browsers.
export ELECTRON_SKIP_BINARY_DOWNLOAD=1 ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip \
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund
npm run build
echo "setup: done"
