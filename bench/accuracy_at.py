#!/usr/bin/env python3
"""A run's accuracy near a step budget and the backward passes it took, from its run directory.

    bench/accuracy_at.py [--budget N] [--window W] [--metric M] RUN_DIR [RUN_DIR ...]

For each run, from the eval lines of metrics.jsonl:
  backward   backward passes at the last evaluation at or before the budget
  at budget  val_accuracy at the first evaluation at or after the budget (the final one
             if the run ended before it)
  window     the mean val_accuracy of the evaluations from budget - W to the budget: one
             evaluation moves by about 0.3 points from seed noise alone (10,000 images),
             the mean of several is steadier for comparing settings
  first at   the backward passes at the first evaluation that met each accuracy level
The metric is val_accuracy, or --metric (e.g. avg.val_accuracy, a run's weight average's).
Defaults: --budget 10000 --window 1000. Standard library only.
"""
import argparse
import json
from pathlib import Path

LEVELS = (0.87, 0.88, 0.885, 0.89, 0.895)


def evals(run_dir):
    with open(Path(run_dir) / "metrics.jsonl") as f:
        return [r for r in map(json.loads, f) if r.get("type") == "eval"]


def with_metric(ev, metric):
    return [e for e in ev if metric in e]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=10000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--metric", default="val_accuracy")
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    print(f"{'run':28s} {'backward':>8s} {'at budget':>9s} {'window':>7s}  first at (backward passes)")
    for run in args.runs:
        ev = with_metric(evals(run), args.metric)
        if not ev:
            print(f"{Path(run).name:28s} no evaluations of {args.metric}")
            continue
        before = [e for e in ev if e["step"] <= args.budget]
        after = [e for e in ev if e["step"] >= args.budget]
        window = [e[args.metric] for e in before if e["step"] >= args.budget - args.window]
        backward = before[-1]["backward_passes"] if before else 0
        at_budget = (after[0] if after else ev[-1])[args.metric]
        mean = f"{sum(window) / len(window):.4f}" if window else "-"
        firsts = []
        for level in LEVELS:
            hit = next((e for e in ev if e[args.metric] >= level), None)
            firsts.append(f"{level}:{hit['backward_passes'] if hit else '-'}")
        print(f"{Path(run).name:28s} {backward:8d} {at_budget:9.4f} {mean:>7s}  {' '.join(firsts)}")


if __name__ == "__main__":
    main()
