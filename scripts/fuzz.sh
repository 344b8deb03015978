#!/usr/bin/env bash
# Fuzzes hpt's input parsers with libFuzzer (clang from Debian), each for a set time:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
# Targets: manifest bench_manifest checkpoint_manifest checkpoint_model state_dict_pickle (default: all,
# 1800 s each). Builds into build-fuzz/ with ASan + UBSan (only the fuzzers and the plugins
# the manifest target resolves against); starts each from its corpus in fuzz/corpus/<target>/
# (copied, so the repository's corpus only grows by hand) and writes what crashes into
# fuzz/findings/<target>/. HPT_FUZZ_JOBS=N runs N targets at once. Exit 1 when a target found something.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --fuzz
seconds=${1:-1800}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(manifest bench_manifest checkpoint_manifest checkpoint_model state_dict_pickle)
build=${HPT_BUILD_DIR:-build-fuzz}
mkdir -p "$build"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DHPT_FUZZ=ON \
    -DHPT_BUILD_TESTS=OFF -DHPT_BUILD_BENCH=OFF -DHPT_CUDA=OFF -DHPT_SANITIZE=address,undefined,fuzzer-no-link \
    >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 1; }
fi
ninja -C "$build" "${targets[@]/%/_fuzz}" hpt_plugins >"$build.build.log" 2>&1 \
  || { grep -E "error|FAILED" -A3 "$build.build.log" | head -n 60 >&2; echo "hpt: fuzz build failed ($build.build.log)" >&2; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}

fuzz_one() {
  local t=$1 work
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$t/." "$work/"
  if [ -d "fuzz/regressions/$t" ]; then cp -r "fuzz/regressions/$t/." "$work/"; fi
  mkdir -p "fuzz/findings/$t"
  echo "hpt: fuzzing $t for ${seconds}s"
  local rc=0
  "$build/bin/${t}_fuzz" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="fuzz/findings/$t/" -print_final_stats=1 "$work" >"fuzz/findings/$t.log" 2>&1 || rc=1
  echo "hpt: $t: $(grep -E '^stat::number_of_executed_units' "fuzz/findings/$t.log" | awk '{print $2}') runs," \
    "$(grep -E '^stat::new_units_added' "fuzz/findings/$t.log" | awk '{print $2}') new inputs, log fuzz/findings/$t.log"
  rm -rf "$work"
  if [ $rc -ne 0 ]; then echo "hpt: $t found a crash: fuzz/findings/$t/" >&2; return 1; fi
}

found=0
jobs=${HPT_FUZZ_JOBS:-1}
pids=()
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || found=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || found=1; done
exit $found
