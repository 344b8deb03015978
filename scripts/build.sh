#!/usr/bin/env bash
# Configures and builds hpt into build/ (Release, Ninja). Used by quickstart.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${HPT_BUILD_DIR:-build}
JOBS=${HPT_JOBS:-$(nproc)}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  # shellcheck disable=SC2086  # HPT_CMAKE_ARGS: extra cmake arguments, split on spaces
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${HPT_CMAKE_ARGS:-} >"$BUILD_DIR.configure.log" 2>&1 \
    || { cat "$BUILD_DIR.configure.log" >&2; echo "hpt: cmake configure failed" >&2; exit 1; }
fi
start=$(date +%s)
if ! ninja -C "$BUILD_DIR" -j "$JOBS" >"$BUILD_DIR.build.log" 2>&1; then
  grep -E "error|FAILED" -A3 "$BUILD_DIR.build.log" | head -n 60 >&2
  echo "hpt: build failed (full log: $BUILD_DIR.build.log)" >&2
  exit 1
fi
echo "hpt: built in $(( $(date +%s) - start )) s ($BUILD_DIR/bin/hpt, plugins in $BUILD_DIR/plugins)"
