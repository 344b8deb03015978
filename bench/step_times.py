#!/usr/bin/env python3
"""Where a run's training time goes, from its run directory.

    bench/step_times.py RUN_DIR [RUN_DIR ...]

For each run: the counts from summary.json (real steps, kept and discarded predicted
steps, probes, roll-backs) and, per step kind, the median and mean wall time of the
step lines in metrics.jsonl. With run.log_every > 1 only every log_every-th step is
written (probes always), so the medians come from a sample; "estimated total" is count
x mean and is printed beside the measured training time so the two can be compared.
Last, the roll-backs per 2,000 step-equivalents, from the roll-back lines.
Standard library only.
"""
import json
import statistics
import sys
from pathlib import Path

ROLLBACK_BIN = 2000  # step-equivalents per bin of the roll-back counts


def read_metrics(run_dir):
    """Step wall times per kind, and the step-equivalent of every roll-back."""
    by_kind, rollbacks = {}, []
    with open(run_dir / "metrics.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if record.get("type") == "step":
                by_kind.setdefault(record["kind"], []).append(record["seconds"])
            elif record.get("type") == "rollback":
                rollbacks.append(record["step"])
    return by_kind, rollbacks


def report(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    by_kind, rollbacks = read_metrics(run_dir)
    real = by_kind.get("full", []) + by_kind.get("correct", [])
    counts = {
        "real (full + correct)": (summary["real_steps"], real),
        "predicted, kept and discarded": (summary["predicted_steps"] + summary.get("predicted_discarded", 0),
                                          by_kind.get("predicted", [])),
        "probe": (summary["probes"], by_kind.get("probe", [])),
    }
    print(f"{run_dir}: {summary['status']}, {summary['steps']} step-equivalents, "
          f"{summary['train_seconds']:.1f} s of training, {summary['rollbacks']} roll-backs")
    print(f"  {'kind':32} {'count':>7} {'sampled':>8} {'median ms':>10} {'mean ms':>9} {'estimated total s':>18}")
    estimated = 0.0
    for kind, (count, seconds) in counts.items():
        if not seconds:
            print(f"  {kind:32} {count:>7} {0:>8} {'-':>10} {'-':>9} {'-':>18}")
            continue
        mean = statistics.fmean(seconds)
        estimated += count * mean
        print(f"  {kind:32} {count:>7} {len(seconds):>8} {statistics.median(seconds) * 1e3:>10.3f} "
              f"{mean * 1e3:>9.3f} {count * mean:>18.1f}")
    print(f"  estimated sum {estimated:.1f} s; measured training time {summary['train_seconds']:.1f} s "
          f"(forecasts, snapshots and roll-backs run between the steps)")
    if rollbacks:
        per_bin = {}
        for step in rollbacks:
            per_bin[step // ROLLBACK_BIN] = per_bin.get(step // ROLLBACK_BIN, 0) + 1
        bins = range(summary["steps"] // ROLLBACK_BIN + 1)
        print(f"  roll-backs per {ROLLBACK_BIN} step-equivalents: " +
              " ".join(str(per_bin.get(b, 0)) for b in bins))


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for arg in argv[1:]:
        run_dir = Path(arg)
        if not (run_dir / "summary.json").is_file() or not (run_dir / "metrics.jsonl").is_file():
            print(f"step_times.py: {run_dir} is not a finished run directory "
                  f"(needs summary.json and metrics.jsonl)", file=sys.stderr)
            return 2
        report(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
