#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds, runs every test.
#   scripts/test.sh              every test (what CI runs)
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/, the fast tests (no
#                                SIGKILL crash loop, no out-of-tree rebuild)
#   scripts/test.sh --tsan       ThreadSanitizer build in build-tsan/, the tests of the
#                                background checkpoint thread
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
mode=${1:-}
case "$mode" in
  "")
    scripts/build.sh
    exec ctest --test-dir "${HPT_BUILD_DIR:-build}" --output-on-failure -j "${HPT_JOBS:-$(nproc)}" --timeout 600
    ;;
  --sanitize)
    export HPT_BUILD_DIR=${HPT_BUILD_DIR:-build-asan}
    export HPT_CMAKE_ARGS="-DHPT_SANITIZE=address,undefined -DHPT_BUILD_BENCH=OFF -DHPT_CUDA=OFF"  # the kernels: the normal build
    # LibTorch is not built with ASan: leaks it keeps on purpose (static caches) are not ours.
    # An allocation too big fails as it does without ASan (LibTorch throws), not with an abort.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    scripts/build.sh
    exec ctest --test-dir "$HPT_BUILD_DIR" --output-on-failure -j "${HPT_JOBS:-$(nproc)}" --timeout 900 \
      -E 'SurvivesTwentySigkills|OutOfTreePlugin'
    ;;
  --tsan)
    # Only what the background-save tests need: they run `hpt` and the plugins too.
    export HPT_BUILD_DIR=${HPT_BUILD_DIR:-build-tsan}
    mkdir -p "$HPT_BUILD_DIR"
    if [ ! -f "$HPT_BUILD_DIR/build.ninja" ]; then
      cmake -S . -B "$HPT_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHPT_SANITIZE=thread \
        -DHPT_BUILD_BENCH=OFF -DHPT_CUDA=OFF >"$HPT_BUILD_DIR.configure.log" 2>&1 || { cat "$HPT_BUILD_DIR.configure.log" >&2; exit 1; }
    fi
    ninja -C "$HPT_BUILD_DIR" -j "${HPT_JOBS:-$(nproc)}" resume_test hpt hpt_plugins hpt_test_plugins \
      >"$HPT_BUILD_DIR.build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$HPT_BUILD_DIR.build.log" | head -n 60 >&2; exit 1; }
    # hpt's code (SDK, host, plugins, tests) is instrumented, LibTorch is not: a race in
    # LibTorch's own memory accesses is not seen. No suppressions: any report fails the run
    # (and a report in an `hpt` child process makes that child exit 66, failing its test).
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1}
    cd "$HPT_BUILD_DIR"
    exec bin/resume_test --gtest_filter='BackgroundCheckpoint.*:Chaos.KillsDuringBackgroundSaves*'
    ;;
  *)
    echo "usage: scripts/test.sh [--sanitize | --tsan]" >&2
    exit 2
    ;;
esac
