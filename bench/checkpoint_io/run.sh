#!/usr/bin/env bash
# Checkpoint save/load throughput of the `torch` checkpointer against the disk's own
# sequential write rate with fsync, both measured in the same directory.
#   bench/checkpoint_io/run.sh [BUILD_DIR] [DIR] [MB]
# BUILD_DIR defaults to build, DIR to $TMPDIR/hpt-checkpoint-io, MB (model size) to 128.
set -euo pipefail

build=${1:-build}
dir=${2:-${TMPDIR:-/tmp}/hpt-checkpoint-io}
mb=${3:-128}
bench="$build/bin/checkpoint_io_bench"
[ -x "$bench" ] || { echo "run.sh: $bench not built (ninja -C $build checkpoint_io_bench)" >&2; exit 2; }

# dd: 512 MiB written with fsync at the end; three runs, the median.
mkdir -p "$dir"
dd_rates=()
for _ in 1 2 3; do
  out=$(dd if=/dev/zero of="$dir/dd.bin" bs=1M count=512 conv=fsync 2>&1)
  rm -f "$dir/dd.bin"
  seconds=$(echo "$out" | sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p')
  dd_rates+=("$(awk -v s="$seconds" 'BEGIN { printf "%.1f", 536870912 / s / 1e6 }')")
done
dd_mbps=$(printf '%s\n' "${dd_rates[@]}" | sort -g | sed -n 2p)
rmdir "$dir" 2>/dev/null || true

results=$("$bench" --dir "$dir" --mb "$mb" --repeats 3)
value() { echo "$results" | awk -v k="$1" '$1 == k { print $2 }'; }

echo "disk (dd bs=1M count=512 conv=fsync, median of 3): $dd_mbps MB/s"
echo "checkpoint size: $(value checkpoint_mb) MB"
printf 'save (plugin):        %8.1f MB/s  = %5.1f%% of dd\n' "$(value save_MBps)" \
  "$(awk -v a="$(value save_MBps)" -v b="$dd_mbps" 'BEGIN { print 100 * a / b }')"
printf 'load (plugin, cold):  %8.1f MB/s  = %5.1f%% of dd\n' "$(value load_cold_MBps)" \
  "$(awk -v a="$(value load_cold_MBps)" -v b="$dd_mbps" 'BEGIN { print 100 * a / b }')"
printf 'save end to end:      %8.1f MB/s  (model -> archive bytes -> disk)\n' "$(value save_end_to_end_MBps)"
printf 'load end to end:      %8.1f MB/s  (disk -> verified bytes -> model)\n' "$(value load_end_to_end_MBps)"
