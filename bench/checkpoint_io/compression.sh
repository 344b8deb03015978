#!/usr/bin/env bash
# Compressed checkpoints against uncompressed: the size on disk and the save/load rate of
# the `torch` checkpointer for the files of existing checkpoints, stored as they are and
# with compression = "zstd" at a few levels (checkpoint_io_bench --from).
#   bench/checkpoint_io/compression.sh BUILD_DIR CHECKPOINT_DIR... [-- LEVEL...]
# LEVELs default to 1 3 9; 5 runs each (median and fastest); MB/s are MB (10^6 bytes) of
# checkpoint content per second, whatever is stored; load is from the disk (page cache
# evicted first), verified and decompressed. Prints a Markdown table.
set -euo pipefail

build=${1:?usage: compression.sh BUILD_DIR CHECKPOINT_DIR... [-- LEVEL...]}
shift
checkpoints=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do checkpoints+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
levels=("$@")
[ ${#levels[@]} -eq 0 ] && levels=(1 3 9)
[ ${#checkpoints[@]} -gt 0 ] || { echo "compression.sh: give at least one checkpoint directory" >&2; exit 2; }
bench="$build/bin/checkpoint_io_bench"
[ -x "$bench" ] || { echo "compression.sh: $bench not built (ninja -C $build checkpoint_io_bench)" >&2; exit 2; }
dir=${TMPDIR:-/tmp}/hpt-checkpoint-compression
runs=5

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| checkpoint | compression | content MB | stored MB | stored / content | save MB/s (median, fastest) | load MB/s (median, fastest) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for checkpoint in "${checkpoints[@]}"; do
  settings=("none 0")
  for level in "${levels[@]}"; do settings+=("zstd $level"); done
  for setting in "${settings[@]}"; do
    read -r compression level <<<"$setting"
    out=$("$bench" --dir "$dir" --repeats $runs --from "$checkpoint" --compression "$compression" --level "$level")
    value() { echo "$out" | awk -v k="$1" '$1 == k { print $2 }'; }
    label=$compression
    [ "$compression" = zstd ] && label="zstd $level"
    printf '| %s | %s | %s | %s | %s | %s, %s | %s, %s |\n' "$checkpoint" "$label" "$(value checkpoint_mb)" \
      "$(value stored_mb)" "$(awk -v a="$(value stored_mb)" -v b="$(value checkpoint_mb)" 'BEGIN { printf "%.1f%%", 100 * a / b }')" \
      "$(value save_MBps)" "$(value best_save_MBps)" "$(value load_cold_MBps)" "$(value best_load_cold_MBps)"
  done
done
