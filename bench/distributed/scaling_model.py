#!/usr/bin/env python3
"""On paper: the hybrid's speedup per step-equivalent on N data-parallel ranks, from what
bench/distributed/run.sh measured on two ranks here.

  t_ar(N)  = 2 (N - 1) / N * S / B          ring all-reduce of S bytes at bandwidth B
  full     = t_c + t_ar(N)                  a real step; no overlap with backward assumed
  hybrid   = (1 - p) (t_c + t_ar(N)) + p t_p
  ratio    = full / hybrid                  cost per step-equivalent (not time to a target)

t_c: a rank's time per real step without the all-reduce wait, from the two-rank runs
     without overlap (fm16-2x64-after, lm-2x16-after): the per-rank compute;
S:   gradient bytes per step (allreduce_bytes / real_steps of the same runs);
p:   the predicted fraction of the two-rank FM-16 hybrid run (used for char_lm too: no
     char_lm hybrid setting exists yet);
t_p: what a predicted step costs in that run, its probes and roll-backs included:
     (hybrid training time - real steps x the two-rank full run's time per step) / predicted steps.
Latency terms are left out (2 (N - 1) hops of a few microseconds).
Extra rows with assumed inputs: LABEL:T_C_MS:S_MIB arguments after OUT_DIR.

  python3 bench/distributed/scaling_model.py /tmp/hpt-distributed-bench
"""
import json
import os
import sys


def summary(out, name):
    with open(os.path.join(out, name, "summary.json")) as f:
        return json.load(f)


def main():
    out = sys.argv[1]
    h, f = summary(out, "fm16-hybrid-2x64"), summary(out, "fm16-full-2x64")
    p = h["predicted_steps"] / h["steps"]
    full_step = f["train_seconds"] / f["real_steps"]
    t_p = (h["train_seconds"] - h["real_steps"] * full_step) / h["predicted_steps"]
    models = []
    for label, two in [("FM-16 CNN", "fm16-2x64-after"), ("char_lm 3.2M", "lm-2x16-after")]:
        s2 = summary(out, two)
        t_c = (s2["train_seconds"] - s2["allreduce_wait_seconds"]) / s2["real_steps"]
        models.append((label, t_c, s2["allreduce_bytes"] / s2["real_steps"]))
    for extra in sys.argv[2:]:
        label, t_c_ms, mib = extra.split(":")
        models.append((label + " (assumed)", float(t_c_ms) / 1000, float(mib) * 2**20))
    print(f"inputs: p = {p:.3f}, t_p = {1000 * t_p:.2f} ms; " +
          "; ".join(f"{m}: t_c = {1000 * t:.1f} ms, S = {b / 2**20:.3f} MiB" for m, t, b in models))
    print()
    print("| model | ranks | link | t_ar, ms | full step, ms | hybrid per step-equivalent, ms | cost ratio | cost ratio at 1 rank |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, t_c, size in models:
        alone = t_c / ((1 - p) * t_c + p * t_p)
        for n in (8, 64):
            for link, gbit in (("25 Gbit/s Ethernet", 25), ("400 Gbit/s InfiniBand", 400)):
                t_ar = 2 * (n - 1) / n * size / (gbit * 1e9 / 8)
                full = t_c + t_ar
                hybrid = (1 - p) * full + p * t_p
                print(f"| {label} | {n} | {link} | {1000 * t_ar:.2f} | {1000 * full:.1f} | {1000 * hybrid:.1f} | "
                      f"{full / hybrid:.2f}x | {alone:.2f}x |")


if __name__ == "__main__":
    main()
