#!/usr/bin/env bash
# Checkpoint save/load throughput of the `torch` checkpointer against the disk's own
# sequential write rate with fsync, both measured in the same directory.
#   bench/checkpoint_io/run.sh [BUILD_DIR] [DIR] [MB]
# BUILD_DIR defaults to build, DIR to $TMPDIR/hpt-checkpoint-io, MB (model size) to 128.
# Each figure is given as the median and the fastest of 5 runs (MB = 10^6 bytes), and
# the training thread's stall for a foreground and a background save of the same model.
set -euo pipefail

build=${1:-build}
dir=${2:-${TMPDIR:-/tmp}/hpt-checkpoint-io}
mb=${3:-128}
runs=5
bench="$build/bin/checkpoint_io_bench"
[ -x "$bench" ] || { echo "run.sh: $bench not built (ninja -C $build checkpoint_io_bench)" >&2; exit 2; }

# The disk: 512 MiB from /dev/zero, fsynced before dd reports.
mkdir -p "$dir"
dd_rates=()
for _ in $(seq $runs); do
  out=$(dd if=/dev/zero of="$dir/dd.bin" bs=1M count=512 conv=fsync 2>&1)
  rm -f "$dir/dd.bin"
  seconds=$(echo "$out" | sed -n 's/.* copied, \([0-9.e+-]*\) s,.*/\1/p')
  dd_rates+=("$(awk -v s="$seconds" 'BEGIN { printf "%.1f", 536870912 / s / 1e6 }')")
done
rmdir "$dir" 2>/dev/null || true
dd_median=$(printf '%s\n' "${dd_rates[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
dd_best=$(printf '%s\n' "${dd_rates[@]}" | sort -g | tail -n 1)

results=$("$bench" --dir "$dir" --mb "$mb" --repeats $runs)
value() { echo "$results" | awk -v k="$1" '$1 == k { print $2 }'; }
percent() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }

echo "command: dd if=/dev/zero of=$dir/dd.bin bs=1M count=512 conv=fsync; $bench --dir $dir --mb $mb --repeats $runs"
echo "checkpoint: $(value checkpoint_mb) MB; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %9s %9s %9s %9s\n' "" "median" "of dd" "fastest" "of dd"
printf '%-34s %9s %9s %9s %9s\n' "disk: dd conv=fsync (MB/s)" "$dd_median" "" "$dd_best" ""
row() {
  local label=$1 key=$2 median best
  median=$(value "$key"); best=$(value "best_$key")
  printf '%-34s %9s %9s %9s %9s\n' "$label" "$median" "$(percent "$median" "$dd_median")" "$best" "$(percent "$best" "$dd_best")"
}
row "save, plugin (MB/s)" save_MBps
row "load from disk, plugin (MB/s)" load_cold_MBps
row "save, model -> disk (MB/s)" save_end_to_end_MBps
row "load, disk -> model (MB/s)" load_end_to_end_MBps
echo
printf '%-34s %9s %9s\n' "training thread held by a save (s)" "median" "fastest"
seconds_row() { printf '%-34s %9s %9s\n' "$1" "$(value "$2_s")" "$(value "best_$2_s")"; }
seconds_row "foreground save" stall_foreground
seconds_row "background save (snapshot only)" stall_background
seconds_row "background save, until written" background_total
