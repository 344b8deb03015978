#!/usr/bin/env python3
"""The table of bench/distributed/run.sh, from the summary.json of each run in OUT_DIR."""
import json
import os
import sys


def load(out, name):
    with open(os.path.join(out, name, "summary.json")) as f:
        return json.load(f)


def main():
    out = sys.argv[1]
    print("| run | ranks | real steps | ms per real step | all-reduce wait, ms per step | rest, ms per step | MiB all-reduced per step |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ["fm16-1x128", "fm16-2x64-overlap", "fm16-2x64-after", "lm-1x32", "lm-2x16-overlap", "lm-2x16-after"]:
        s = load(out, name)
        real = s["real_steps"]
        step = 1000 * s["train_seconds"] / real
        wait = 1000 * s.get("allreduce_wait_seconds", 0) / real
        mib = s.get("allreduce_bytes", 0) / real / 2**20
        print(f"| {name} | {s.get('world_size', 1)} | {real} | {step:.1f} | {wait:.1f} | {step - wait:.1f} | {mib:.2f} |")
    h, f = load(out, "fm16-hybrid-2x64"), load(out, "fm16-full-2x64")
    per_step = h["allreduce_bytes"] / h["real_steps"] if h["real_steps"] else 0
    print()
    print("| two ranks, FM-16, 1,500 step-equivalents | real steps | predicted steps | MiB all-reduced | all-reduce wait, s | training, s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, s in [("full training", f), ("hybrid (linear)", h)]:
        print(f"| {label} | {s['real_steps']} | {s['predicted_steps']} | {s['allreduce_bytes'] / 2**20:.1f} | "
              f"{s['allreduce_wait_seconds']:.2f} | {s['train_seconds']:.2f} |")
    print()
    print(f"predicted steps sent nothing: {h['predicted_steps']} x {per_step / 2**20:.3f} MiB = "
          f"{h['predicted_steps'] * per_step / 2**20:.1f} MiB not all-reduced")


if __name__ == "__main__":
    main()
