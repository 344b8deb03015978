#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds, runs every test.
#   scripts/test.sh              every test (what CI runs)
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/, the fast tests (no
#                                SIGKILL crash loop, no out-of-tree rebuild)
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
    export HPT_CMAKE_ARGS="-DHPT_SANITIZE=address,undefined -DHPT_BUILD_BENCH=OFF"
    # LibTorch is not built with ASan: leaks it keeps on purpose (static caches) are not ours.
    # An allocation too big fails as it does without ASan (LibTorch throws), not with an abort.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    scripts/build.sh
    exec ctest --test-dir "$HPT_BUILD_DIR" --output-on-failure -j "${HPT_JOBS:-$(nproc)}" --timeout 900 \
      -E 'SurvivesTwentySigkills|OutOfTreePlugin'
    ;;
  *)
    echo "usage: scripts/test.sh [--sanitize]" >&2
    exit 2
    ;;
esac
