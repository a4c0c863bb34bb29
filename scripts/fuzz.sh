#!/usr/bin/env bash
# Builds the agent's libFuzzer targets (android-agent/fuzz) with clang + ASan + UBSan into build/fuzz and runs each
# for a bounded time, starting from the committed seed corpus (which also replays every regression input). Any
# crash, leak, sanitizer report, broken invariant or per-input timeout fails the run and leaves the input under
# build/fuzz/artifacts/<target>/. Run by `npm test` (scripts/test.mjs); by hand:
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]        (default 25: three targets, about 80 s on 2 cores)
# Without clang or its libFuzzer runtime: a loud SKIP and exit 0 locally, a failure (exit 1) when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${1:-${CONFIDANT_FUZZ_SECONDS:-25}}
BUILD_DIR=build/fuzz
TARGETS=(fuzz_payloads fuzz_session fuzz_server)
SEEDS=android-agent/fuzz/corpus

missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "fuzz: FAILED: $1 and CI=true (apt-get install clang libclang-rt-dev; scripts/setup.sh does)" >&2
    exit 1
  fi
  echo "################################################################################" >&2
  echo "## *** SKIPPING the agent fuzz tier: $1" >&2
  echo "## (apt-get install clang libclang-rt-dev, or run scripts/setup.sh); with CI=true this is a failure." >&2
  echo "################################################################################" >&2
  exit 0
}

command -v clang++ >/dev/null 2>&1 || missing "clang++ not found"
# clang without compiler-rt's libFuzzer/ASan archives (libclang-rt-dev) compiles but cannot link the targets.
mkdir -p "$BUILD_DIR/probe"
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
  > "$BUILD_DIR/probe/probe.cpp"
clang++ -fsanitize=fuzzer,address,undefined "$BUILD_DIR/probe/probe.cpp" -o "$BUILD_DIR/probe/probe" 2>/dev/null ||
  missing "clang++ cannot link -fsanitize=fuzzer,address,undefined (libclang-rt-dev missing?)"

echo "fuzz: building ${TARGETS[*]} with clang + ASan + UBSan into $BUILD_DIR"
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONFIDANT_FUZZ=ON >/dev/null
cmake --build "$BUILD_DIR" --target "${TARGETS[@]}" -j 2 >/dev/null

# Stages for fuzz_session's loaded-stage modes: the whole stories260K model (first and last stage at once) and a
# middle stage (hidden-state input, gradient from the next stage), packed by the tests' independent packer.
STAGES_DIR="$BUILD_DIR/stages"
if [ ! -s "$STAGES_DIR/whole.stage" ] || [ ! -s "$STAGES_DIR/mid.stage" ] ||
   [ android-agent/test/pack_stage.py -nt "$STAGES_DIR/whole.stage" ]; then
  python3 android-agent/test/pack_stage.py --hf models/stories260K --out-dir "$STAGES_DIR" \
    --stage whole:0:5 --stage mid:1:3 >/dev/null
fi
export CONFIDANT_FUZZ_STAGES="$PWD/$STAGES_DIR/whole.stage:$PWD/$STAGES_DIR/mid.stage"

failed=0
for t in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$t"  # new inputs land here (the first corpus folder), never in the committed seeds
  artifacts="$BUILD_DIR/artifacts/$t"
  log="$BUILD_DIR/$t.log"
  rm -rf "$artifacts"  # only this run's findings
  mkdir -p "$work" "$artifacts"
  echo "fuzz: $t for ${SECONDS_PER_TARGET} s (log: $log)"
  # -timeout: one input over 20 s is a finding (a hang); timeout(1) only guards against libFuzzer itself hanging.
  if timeout --kill-after=10 $((SECONDS_PER_TARGET + 60)) "$BUILD_DIR/android-agent/fuzz/$t" \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work" "$SEEDS/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    echo "fuzz: $t passed: $execs inputs; ${last#*	}"
  else
    failed=1
    echo "fuzz: $t FAILED; the end of $log:" >&2
    tail -n 40 "$log" >&2
    echo "fuzz: reproduce with: $BUILD_DIR/android-agent/fuzz/$t $artifacts/<crash-file>" >&2
  fi
done
exit $failed
