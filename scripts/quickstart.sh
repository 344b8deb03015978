#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains Fashion-MNIST (the FM-16
# CNN) with plain full training, then prints what it reached.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
build/bin/hpt run configs/quickstart.toml --overwrite "$@"
