#!/usr/bin/env bash
# Data-parallel cost on two local ranks (Gloo, one thread each on this 2-core machine):
# time per real step, split into the part spent waiting for the gradient all-reduce after
# backward (summary.json allreduce_wait_seconds) and the rest, with the buckets
# overlapping backward (bucket_mb 1) and without (one bucket after backward,
# bucket_mb 65536), for FM-16 and for char_lm at about 3.2M parameters; and a two-rank
# FM-16 hybrid run: the all-reduce volume its predicted steps did not send.
#   bench/distributed/run.sh [OUT_DIR]        (default /tmp/hpt-distributed-bench)
# Prints a markdown table (bench/distributed/summarize.py). Nothing else may run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."
HPT=${HPT:-build/bin/hpt}
OUT=${1:-/tmp/hpt-distributed-bench}
mkdir -p "$OUT"
run() {  # name, then hpt run arguments
  local name=$1
  shift
  "$HPT" run "$@" run.runs_dir=\""$OUT"\" run.name=\""$name"\" --overwrite --no-progress >"$OUT/$name.log" 2>&1 \
    || { echo "bench/distributed: $name failed (see $OUT/$name.log)" >&2; exit 1; }
}
FM=(configs/fm16_baseline.toml run.max_steps=300 run.eval_every=0 'run.target={metric="val_accuracy", value=2.0}'
    backend.threads=1)
LM=(bench/distributed/char_lm.toml backend.threads=1)
HY=(configs/fm16_hybrid_linear.toml run.max_steps=1500 run.eval_every=0 'run.target={metric="val_accuracy", value=2.0}'
    backend.threads=1)
run fm16-1x128 "${FM[@]}" task.batch_size=128
run fm16-2x64-overlap "${FM[@]}" task.batch_size=64 distributed.bucket_mb=0.01 --nproc 2
run fm16-2x64-after "${FM[@]}" task.batch_size=64 distributed.bucket_mb=65536 --nproc 2
run lm-1x32 "${LM[@]}" task.batch_size=32
run lm-2x16-overlap "${LM[@]}" distributed.bucket_mb=1 --nproc 2
run lm-2x16-after "${LM[@]}" distributed.bucket_mb=65536 --nproc 2
run fm16-hybrid-2x64 "${HY[@]}" task.batch_size=64 --nproc 2
run fm16-full-2x64 "${FM[@]}" run.max_steps=1500 task.batch_size=64 --nproc 2
python3 bench/distributed/summarize.py "$OUT"
