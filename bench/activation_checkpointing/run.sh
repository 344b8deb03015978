#!/bin/sh
# Peak memory and milliseconds per step of char_lm_long_context.toml, trained without and
# with activation checkpointing (docs/benchmarks.md, "Gradient checkpointing").
#   bench/activation_checkpointing/run.sh [BUILD_DIR]     (default: build)
# Each run is its own process, so summary.json's peak_memory_bytes (on the CPU the
# process's peak resident set) is that run's. ms per step: the median step time of
# metrics.jsonl without the first two steps (allocator and thread-pool warm-up).
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for on in false true; do
  "$build/bin/hpt" run "$here/char_lm_long_context.toml" "run.runs_dir=\"$out\"" "run.name=\"checkpointing-$on\"" \
    "task.activation_checkpointing=$on" >"$out/log-$on.txt" 2>&1 || { cat "$out/log-$on.txt"; exit 1; }
done
python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
print("| activation_checkpointing | peak memory (MiB) | ms per step (median) | steps | peak of |")
print("| --- | ---: | ---: | ---: | --- |")
for on in ("false", "true"):
    run = f"{out}/checkpointing-{on}"
    summary = json.load(open(f"{run}/summary.json"))
    steps = [json.loads(l) for l in open(f"{run}/metrics.jsonl")]
    seconds = [s["seconds"] for s in steps if s.get("type") == "step"]
    print(f"| {on} | {summary['peak_memory_bytes'] / 2**20:.0f} | {1000 * statistics.median(seconds[2:]):.0f} "
          f"| {len(seconds)} | {summary['peak_memory_of']} |")
PY
