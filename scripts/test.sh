#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
ctest --test-dir "${HPT_BUILD_DIR:-build}" --output-on-failure -j "${HPT_JOBS:-$(nproc)}" --timeout 600
