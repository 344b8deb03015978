#!/usr/bin/env bash
# The main job: installs what is missing, builds, then trains Fashion-MNIST (the FM-16
# CNN, target 85% within 6,000 step-equivalents) twice, interleaved: plain full training and the hybrid
# predictive trainer, and prints both side by side (bench/quickstart.toml).
# Runs already complete are kept and reused; delete runs/bench/quickstart to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
"${HPT_BUILD_DIR:-build}"/bin/hpt bench bench/quickstart.toml "$@"
echo
sed -n '/^Median (min–max) over seeds./,/^Budget:/p' runs/bench/quickstart/report.md
echo "Full report: runs/bench/quickstart/report.md and report.html"
