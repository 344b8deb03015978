#!/usr/bin/env python3
"""Runs the variants of an `hpt bench` manifest one `hpt run` at a time, each with a time
limit, and tabulates them: time to target, or the wall time of full and predicted steps.

    bench/gpu/run_suite.py BENCH_TOML --hpt build-gpu/bin/hpt --runs-dir DIR
        [--mode ttt|steps] [--seconds S] [--per-run S] [--deadline EPOCH]
        [--set key.path=value ...] [--only NAME,NAME] [--json FILE] [--md FILE]

Each run is what `hpt bench` would run for that variant and seed (`hpt run BASE
run.seed=.. run.max_steps=BUDGET run.target=.. run.name=VARIANT-sSEED run.runs_dir=..
OVERRIDES.. SET..`), plus the --set overrides (data paths, say), so the numbers match the
bench's. Unlike `hpt bench`, a run that outlasts its limit is stopped and reported as
such, and the suite stops starting runs once --seconds (or --deadline) is spent, so a
check on a borrowed machine ends on time with whatever finished.

--mode ttt: status, seconds, steps and backward passes to the target, the final metric,
training seconds and the predicted fraction, from each run's summary.json.
--mode steps: the median and mean wall time of each kind of step (full, predicted, probe,
correct) from metrics.jsonl's step lines (bench/step_times.py reads them), leaving out
the first --skip-steps real steps (start-up: cuBLAS handles, the allocator's first
allocations), and the ratio of a predicted step's median to a full step's.

--json merges {"<bench name>": {...}} into FILE (created when missing); --md writes the
table as markdown. Standard library only (tomllib: Python 3.11 or later).
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        sys.exit("run_suite.py: needs Python 3.11 or later (tomllib), or the tomli package")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from step_times import read_metrics  # noqa: E402  (bench/step_times.py)


def toml_value(value):
    """A Python value from tomllib as TOML text, for a key.path=value override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"cannot write {value!r} as TOML")


def plan(bench_path, runs_dir, extra, only):
    bench_path = Path(bench_path).resolve()
    with open(bench_path, "rb") as f:
        doc = tomllib.load(f)
    b = doc["bench"]
    base = (bench_path.parent / b["base"]).resolve()
    name = b.get("name", bench_path.stem)
    runs = []
    for seed in b.get("seeds", [0]):
        for v in doc.get("variant", []):
            if only and v["name"] not in only:
                continue
            args = [str(base), f"run.seed={seed}", f"run.name={v['name']}-s{seed}",
                    f"run.runs_dir={json.dumps(str(runs_dir))}"]
            if "budget" in b:
                args.append(f"run.max_steps={b['budget']}")
            if "target" in b:
                args.append(f"run.target={toml_value(b['target'])}")
            args += list(v.get("overrides", []))
            args += [f"{k}={toml_value(x)}" for k, x in v.get("set", {}).items()]
            args += extra
            runs.append({"variant": v["name"], "seed": seed, "name": f"{v['name']}-s{seed}", "args": args})
    return name, b, runs


def run_one(hpt, run, runs_dir, limit):
    out_path = Path(runs_dir) / f"{run['name']}.out"
    cmd = [hpt, "run", *run["args"], "--overwrite", "--no-progress"]
    start = time.monotonic()
    with open(out_path, "w") as out:
        out.write(" ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
            status = None
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code = None
            status = f"stopped after its {limit:.0f} s limit"
    wall = time.monotonic() - start
    run_dir = Path(runs_dir) / run["name"]
    result = {"variant": run["variant"], "seed": run["seed"], "run_dir": str(run_dir), "exit_code": code,
              "wall_seconds": round(wall, 2), "command": cmd}
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        result["summary"] = json.loads(summary_path.read_text())
    if status is None:
        status = "ok" if code == 0 else f"exit code {code}"
    result["status"] = status
    if code != 0:
        tail = out_path.read_text(errors="replace").strip().splitlines()[-4:]
        result["output_tail"] = tail
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        by_kind, rollbacks = read_metrics(run_dir)
        result["step_seconds"] = by_kind
        result["rollback_steps"] = rollbacks
    return result


def step_stats(result, skip):
    by_kind = result.get("step_seconds", {})
    stats = {}
    for kind, seconds in by_kind.items():
        s = seconds[skip:] if kind in ("full", "correct") else seconds
        if s:
            stats[kind] = {"count": len(s), "median_ms": 1e3 * statistics.median(s), "mean_ms": 1e3 * statistics.fmean(s),
                           "min_ms": 1e3 * min(s)}
    if "full" in stats and "predicted" in stats:
        stats["predicted_over_full"] = stats["predicted"]["median_ms"] / stats["full"]["median_ms"]
    return stats


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(name, mode, bench, results, skipped):
    lines = [f"### {name}", ""]
    if mode == "ttt":
        t = bench.get("target", {})
        lines.append(f"Target {t.get('metric')} {t.get('value')}, budget {bench.get('budget')} step-equivalents.")
        lines += ["", "| variant | seed | status | s to target | steps to target | backward passes | final metric | "
                  "train s | predicted | peak GiB |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        metric = t.get("metric")
        for r in results:
            s = r.get("summary", {})
            final = s.get("final_metrics", {}).get(metric)
            peak = (s.get("memory") or {}).get("peak_bytes")
            lines.append(
                f"| {r['variant']} | {r['seed']} | {r['status']}{'' if not s else ', ' + s.get('status', '')} | "
                f"{fmt(s.get('seconds_to_target'), '.1f')} | {fmt(s.get('steps_to_target'), 'd')} | "
                f"{fmt(s.get('backward_passes_to_target'), 'd')} | {fmt(final, '.4f')} | "
                f"{fmt(s.get('train_seconds'), '.1f')} | {fmt(s.get('predicted_fraction'), '.2f')} | "
                f"{fmt(peak / 2**30 if isinstance(peak, (int, float)) else None, '.2f')} |")
    else:
        lines += ["| variant | status | full: n, median ms | predicted: n, median ms | probe: n, median ms | "
                  "predicted / full | peak GiB |", "| --- | --- | --- | --- | --- | ---: | ---: |"]
        for r in results:
            st = r.get("steps", {})
            cell = lambda k: (f"{st[k]['count']}, {st[k]['median_ms']:.3f}" if k in st else "-")  # noqa: E731
            peak = ((r.get("summary") or {}).get("memory") or {}).get("peak_bytes")
            lines.append(f"| {r['variant']} | {r['status']} | {cell('full')} | {cell('predicted')} | {cell('probe')} | "
                         f"{fmt(st.get('predicted_over_full'), '.4f')} | "
                         f"{fmt(peak / 2**30 if isinstance(peak, (int, float)) else None, '.2f')} |")
    for r in results:
        if r.get("output_tail"):
            lines += ["", f"{r['variant']}-s{r['seed']} ({r['status']}), last lines:", "```"] + r["output_tail"] + ["```"]
    if skipped:
        lines += ["", "Not run (out of time): " + ", ".join(skipped)]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bench")
    p.add_argument("--hpt", required=True)
    p.add_argument("--runs-dir", required=True)
    p.add_argument("--mode", choices=["ttt", "steps"], default="ttt")
    p.add_argument("--seconds", type=float, default=3600.0, help="time for the whole suite")
    p.add_argument("--per-run", type=float, default=600.0, help="time limit of one run")
    p.add_argument("--deadline", type=float, default=None, help="wall-clock end (seconds since the epoch)")
    p.add_argument("--min-run", type=float, default=15.0, help="start no run with less time than this left")
    p.add_argument("--set", action="append", default=[], help="key.path=value added to every run")
    p.add_argument("--only", default="", help="comma-separated variant names")
    p.add_argument("--skip-steps", type=int, default=5, help="--mode steps: first real steps left out")
    p.add_argument("--json")
    p.add_argument("--md")
    a = p.parse_args()

    runs_dir = Path(a.runs_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    only = {x for x in a.only.split(",") if x}
    name, bench, runs = plan(a.bench, runs_dir, a.set, only)
    end = time.time() + a.seconds
    if a.deadline is not None:
        end = min(end, a.deadline)
    results, skipped = [], []
    for run in runs:
        left = end - time.time()
        if left < a.min_run:
            skipped.append(run["name"])
            continue
        limit = min(a.per_run, left)
        print(f"run_suite: {name}: {run['name']} (limit {limit:.0f} s)", flush=True)
        r = run_one(a.hpt, run, runs_dir, limit)
        if a.mode == "steps":
            r["steps"] = step_stats(r, a.skip_steps)
        s = r.get("summary", {})
        print(f"run_suite: {run['name']}: {r['status']}, {r['wall_seconds']:.1f} s"
              + (f", {s.get('steps')} steps, target at {s.get('seconds_to_target')} s" if s else ""), flush=True)
        r.pop("step_seconds", None)  # raw per-step lists stay in metrics.jsonl
        results.append(r)

    md = markdown(name, a.mode, bench, results, skipped)
    print(md)
    if a.md:
        Path(a.md).write_text(md)
    if a.json:
        path = Path(a.json)
        merged = json.loads(path.read_text()) if path.is_file() else {}
        merged[name] = {"mode": a.mode, "bench": bench, "results": results, "not_run": skipped}
        path.write_text(json.dumps(merged, indent=1, default=str) + "\n")
    failed = [r for r in results if r["status"] != "ok"]
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
