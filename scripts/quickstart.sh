#!/usr/bin/env bash
# The main job: installs what is missing, builds, then trains Fashion-MNIST (the FM-16
# CNN, target 85% within 6,000 step-equivalents) four times, interleaved: plain AdamW, AdamW
# evaluated on an EMA of its weights, and the hybrid on raw and on averaged weights, and prints
# them side by side with the speedups against both plain and averaged training
# (bench/quickstart.toml).
# Runs already complete are kept and reused; delete runs/bench/quickstart to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
"${HPT_BUILD_DIR:-build}"/bin/hpt bench bench/quickstart.toml "$@"
echo
sed -n '/^Median (min–max) over seeds./,/^Budget:/p' runs/bench/quickstart/report.md
echo
# Every variant against every other, seed by seed (the section, up to the next heading).
awk '/^## Speedups run by run/ { on = 1; print; next } on && /^## / { exit } on' runs/bench/quickstart/report.md
echo "Full report: runs/bench/quickstart/report.md and report.html"
