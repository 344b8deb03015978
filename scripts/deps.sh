#!/usr/bin/env bash
# Installs the Debian packages hpt needs, only those missing. Idempotent and quiet
# when everything is present. Sourced or run by quickstart.sh and test.sh.
set -euo pipefail

HPT_PACKAGES=(
  cmake ninja-build g++ pkg-config
  libtorch-dev libopenblas0-pthread libgloo-dev
  libboost1.81-dev libboost-json1.81-dev libboost-filesystem1.81-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libssl-dev
  dataset-fashion-mnist fortunes
  python3-protobuf python3-crcmod python3-optuna libzstd-dev
)
# scripts/deps.sh --fuzz also installs what scripts/fuzz.sh and the sanitizer builds need.
HPT_FUZZ_PACKAGES=(clang libclang-rt-14-dev)
# Optional: the PyTorch reference loop, the HTML report test and the shared-study test of
# `hpt tune` (PostgreSQL) use these when present. (python3-sklearn, which Optuna's parameter
# importances need, cannot be installed beside libboost1.81-dev: it pulls libboost1.74-dev.)
HPT_OPTIONAL_PACKAGES=(python3-torch chromium postgresql python3-psycopg2)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

install_packages() {
  local want=("$@")
  [ ${#want[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "hpt: installing Debian packages: ${want[*]}"
  if ! $sudo apt-get install -y -q --no-install-recommends "${want[@]}" >/tmp/hpt-apt.log 2>&1; then
    $sudo apt-get update -q >>/tmp/hpt-apt.log 2>&1 || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${want[@]}" >>/tmp/hpt-apt.log 2>&1 || return 1
  fi
}

hpt_install_deps() {
  local need
  mapfile -t need < <(missing_packages "${HPT_PACKAGES[@]}")
  if [ ${#need[@]} -gt 0 ]; then
    if ! DEBIAN_FRONTEND=noninteractive install_packages "${need[@]}"; then
      echo "hpt: could not install ${need[*]} (see /tmp/hpt-apt.log)" >&2
      tail -n 20 /tmp/hpt-apt.log >&2
      return 1
    fi
  fi
  mapfile -t need < <(missing_packages "${HPT_OPTIONAL_PACKAGES[@]}")
  if [ ${#need[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive install_packages "${need[@]}" \
      || echo "hpt: optional packages not installed (${need[*]}); the tests that need them will skip" >&2
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  if [ "${1:-}" = "--fuzz" ]; then HPT_PACKAGES+=("${HPT_FUZZ_PACKAGES[@]}"); fi
  hpt_install_deps
fi
