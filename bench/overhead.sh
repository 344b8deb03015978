#!/usr/bin/env bash
# Per-step overhead of hpt's full training against the raw LibTorch loop and the PyTorch
# loop (bench/reference/README.md), on the FM-16 step: the three run interleaved
# (hpt, libtorch, pytorch, hpt, ...) ROUNDS times for STEPS steps each, with the same
# seed and threads. Prints per-step time min/median/max of each (the first WARMUP steps
# of every run left out, the same for all three) and the ratios of the medians.
#
#   bench/overhead.sh [--steps N] [--rounds R] [--threads T] [--build DIR]
#
# hpt's step times are the `seconds` of the step lines of its metrics.jsonl
# (run.log_every=1); the reference loops write theirs with --json (step_times_ms).
# Run it on an otherwise idle machine: other load stretches every step.
set -euo pipefail

steps=500 rounds=3 threads=$(nproc) build=build warmup=20
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "overhead.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if (( steps <= warmup )); then echo "overhead.sh: --steps must be above the $warmup warm-up steps" >&2; exit 2; fi

root=$(cd "$(dirname "$0")/.." && pwd)
for exe in "$build/bin/hpt" "$build/bin/fm16_libtorch"; do
  [[ -x $exe ]] || { echo "overhead.sh: $exe not built (ninja -C $build hpt fm16_libtorch)" >&2; exit 2; }
done
out=$(mktemp -d "${TMPDIR:-/tmp}/hpt-overhead.XXXXXX")
trap 'rm -rf "$out"' EXIT

for ((r = 0; r < rounds; ++r)); do
  echo "round $((r + 1))/$rounds: hpt" >&2
  "$build/bin/hpt" run "$root/configs/fm16_baseline.toml" run.max_steps="$steps" run.eval_every=0 run.log_every=1 \
    run.seed=0 backend.threads="$threads" run.name="hpt-$r" run.runs_dir="\"$out\"" --overwrite --no-progress \
    > "$out/hpt-$r.log" 2>&1
  echo "round $((r + 1))/$rounds: libtorch" >&2
  "$build/bin/fm16_libtorch" --steps "$steps" --seed 0 --threads "$threads" --eval-every "$steps" --target 0 \
    --json "$out/libtorch-$r.json" > "$out/libtorch-$r.log" 2>&1
  echo "round $((r + 1))/$rounds: pytorch" >&2
  /usr/bin/python3 "$root/bench/reference/fm16_pytorch.py" --steps "$steps" --seed 0 --threads "$threads" \
    --eval-every "$steps" --target 0 --json "$out/pytorch-$r.json" > "$out/pytorch-$r.log" 2>&1
done

/usr/bin/python3 - "$out" "$rounds" "$warmup" "$steps" "$threads" <<'EOF'
import json, statistics, sys
out, rounds, warmup, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def hpt_ms(r):
    with open(f"{out}/hpt-{r}/metrics.jsonl") as f:
        lines = [json.loads(l) for l in f]
    return [1000.0 * l["seconds"] for l in lines if l.get("type") == "step" and l.get("kind") == "full"]

def ref_ms(loop, r):
    with open(f"{out}/{loop}-{r}.json") as f:
        return json.load(f)["step_times_ms"]

times = {"hpt": [], "libtorch": [], "pytorch": []}
medians = {k: [] for k in times}
for r in range(rounds):
    for loop in times:
        t = (hpt_ms(r) if loop == "hpt" else ref_ms(loop, r))[warmup:]
        times[loop] += t
        medians[loop].append(statistics.median(t))

print(f"per-step time, ms ({rounds} interleaved rounds of {steps} steps, first {warmup} left out, {threads} threads)")
print(f"{'loop':10} {'min':>8} {'median':>8} {'max':>8} {'steps':>7}")
for loop, t in times.items():
    print(f"{loop:10} {min(t):8.3f} {statistics.median(t):8.3f} {max(t):8.3f} {len(t):7d}")
for ref in ("libtorch", "pytorch"):
    per_round = [h / x for h, x in zip(medians["hpt"], medians[ref])]
    print(f"hpt / {ref}: {statistics.median(times['hpt']) / statistics.median(times[ref]):.3f} "
          f"(median step over median step; per round {min(per_round):.3f}-{max(per_round):.3f})")
EOF
