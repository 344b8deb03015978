#!/usr/bin/env bash
# GPU runs of `hpt` with the cuda backend, each with a time limit, in three parts:
#   steps    the wall time of full and predicted steps (step_cost.toml: char_lm, ~150M
#            parameters, float32, plain and hybrid), read from metrics.jsonl by
#            bench/step_times.py and run_suite.py
#   fm16     FM-16 time to 89.5 %: baseline and hybrid, fp32 and bf16 (fm16_gpu.toml)
#   char_lm  char_lm time to 2.5 bits per character: the same four (char_lm_gpu_ttt.toml)
#
#   bench/gpu/step_cost.sh [--build build-gpu] [--out DIR] [--seconds 300]
#                          [--parts steps,fm16,char_lm] [--corpus PATH] [--fashion-mnist DIR]
#
# --seconds bounds the whole script (parts that do not fit are reported as not run); each
# part has its own share and each run its own limit (STEPS_SECONDS, STEPS_PER_RUN,
# FM16_SECONDS, FM16_PER_RUN, CHARLM_SECONDS, CHARLM_PER_RUN in the environment change them).
# --corpus and --fashion-mnist set task.corpus and task.data_dir when the data is not at
# the Debian packages' paths. Writes DIR/runs.json (every run's summary and step
# statistics), DIR/runs.md (the tables) and DIR/runs/ (the run directories).
# Exit code: 0 when every part ran every run to completion, 1 otherwise.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=build-gpu out=gpu_runs seconds=300 parts=steps,fm16,char_lm corpus="" fmnist=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --parts) parts=$2; shift 2 ;;
    --corpus) corpus=$2; shift 2 ;;
    --fashion-mnist) fmnist=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "step_cost.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
hpt="$build/bin/hpt"
[[ -x $hpt ]] || { echo "step_cost.sh: $hpt not built (ninja -C $build hpt hpt_plugins)" >&2; exit 2; }
[[ -e $build/plugins/hpt_backend_cuda.so ]] \
  || { echo "step_cost.sh: $build/plugins/hpt_backend_cuda.so not built (a CUDA LibTorch and nvcc are needed)" >&2; exit 2; }
mkdir -p "$out/runs"
out=$(cd "$out" && pwd)
hpt=$(cd "$(dirname "$hpt")" && pwd)/hpt
deadline=$(( $(date +%s) + seconds ))
: > "$out/runs.md"

char_sets=() fm_sets=()
[[ -n $corpus ]] && char_sets=(--set "task.corpus=\"$corpus\"")
[[ -n $fmnist ]] && fm_sets=(--set "task.data_dir=\"$fmnist\"")

status=0
part() {  # part NAME BENCH_TOML MODE SHARE_SECONDS PER_RUN_SECONDS [run_suite args...]
  local name=$1 bench=$2 mode=$3 share=$4 per_run=$5
  shift 5
  local left=$(( deadline - $(date +%s) ))
  if (( left < 20 )); then
    echo "step_cost.sh: $name not run: out of time" | tee -a "$out/runs.md"
    status=1
    return
  fi
  (( share > left )) && share=$left
  echo "step_cost.sh: $name: $bench, up to ${share} s, ${per_run} s a run" >&2
  python3 "$root/bench/gpu/run_suite.py" "$root/bench/gpu/$bench" --hpt "$hpt" --runs-dir "$out/runs/$name" \
    --mode "$mode" --seconds "$share" --per-run "$per_run" --deadline "$deadline" \
    --json "$out/runs.json" --md "$out/$name.md" "$@" || status=1
  [[ -f $out/$name.md ]] && cat "$out/$name.md" >> "$out/runs.md" && rm -f "$out/$name.md"
  echo >> "$out/runs.md"
}

IFS=, read -r -a want <<< "$parts"
for p in "${want[@]}"; do
  case "$p" in
    steps)
      part steps step_cost.toml steps "${STEPS_SECONDS:-90}" "${STEPS_PER_RUN:-45}" "${char_sets[@]}"
      # bench/step_times.py's fuller account of the same runs (counts, estimated totals).
      dirs=()
      for d in "$out"/runs/steps/*/; do [[ -f $d/summary.json ]] && dirs+=("$d"); done
      if (( ${#dirs[@]} )); then
        { echo '```'; python3 "$root/bench/step_times.py" "${dirs[@]}"; echo '```'; echo; } >> "$out/runs.md" 2>&1
      fi
      ;;
    fm16) part fm16 fm16_gpu.toml ttt "${FM16_SECONDS:-120}" "${FM16_PER_RUN:-50}" "${fm_sets[@]}" ;;
    char_lm) part char_lm char_lm_gpu_ttt.toml ttt "${CHARLM_SECONDS:-100}" "${CHARLM_PER_RUN:-40}" "${char_sets[@]}" ;;
    *) echo "step_cost.sh: unknown part '$p' (steps, fm16, char_lm)" >&2; status=2 ;;
  esac
done
cat "$out/runs.md"
exit $status
