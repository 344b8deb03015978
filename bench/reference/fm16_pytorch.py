#!/usr/bin/python3
"""The FM-16 protocol in Python on Debian's python3-torch: the same loop as
fm16_libtorch.cpp (model, initialisation order, AdamW, batch, normalisation, data
order, evaluation, command line and JSON summary), so the two can be compared step for
step. README.md in this folder describes both."""

import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN = 0.2860
STD = 0.3530
BATCH = 128
LR = 6e-3
WEIGHT_DECAY = 0.01
WARMUP_STEPS = 20  # left out of the per-step statistics
EVAL_BATCH = 1000
DATA_DIR = "/usr/share/datasets/fashion-mnist/"
DATA_HINT = "it comes with the Debian package dataset-fashion-mnist"


def read_idx(path):
    """An IDX file (gzip-compressed) as a uint8 numpy array of the shape its header gives."""
    if not os.path.exists(path):
        sys.exit(f"fm16_pytorch: missing data file {path}: {DATA_HINT}")
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit(f"fm16_pytorch: {path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * d:8 + 4 * d], "big") for d in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(prefix):
    """(images {n, 1, 28, 28} float32 normalised, labels {n} int64)."""
    images = torch.from_numpy(read_idx(f"{DATA_DIR}{prefix}-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(read_idx(f"{DATA_DIR}{prefix}-labels-idx1-ubyte.gz").copy())
    images = images.to(torch.float32).div_(255).sub_(MEAN).div_(STD).unsqueeze(1).contiguous()
    return images, labels.to(torch.int64)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=0)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return self.fc(x.mean((2, 3)))


class Sampler:
    """Batches of training indices: a fresh seeded permutation each epoch, whole batches only."""

    def __init__(self, size, seed):
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = None
        self.position = 0

    def next(self):
        if self.order is None or self.position + BATCH > self.size:
            self.order = torch.randperm(self.size, generator=self.generator)
            self.position = 0
        batch = self.order[self.position:self.position + BATCH]
        self.position += BATCH
        return batch


@torch.no_grad()
def evaluate(net, images, labels):
    net.eval()
    n = images.shape[0]
    loss_sum = 0.0
    correct = 0
    for i in range(0, n, EVAL_BATCH):
        x, y = images[i:i + EVAL_BATCH], labels[i:i + EVAL_BATCH]
        logits = net(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += logits.argmax(1).eq(y).sum().item()
    net.train()
    return {"accuracy": correct / n, "loss": loss_sum / n}


def step_stats(step_ms):
    """Statistics over the step times after the warm-up steps (over all of them if the
    run is no longer than the warm-up)."""
    skip = WARMUP_STEPS if len(step_ms) > WARMUP_STEPS else 0
    kept = step_ms[skip:]
    return {"min": min(kept), "median": statistics.median(kept), "max": max(kept),
            "mean": sum(kept) / len(kept), "count": len(kept), "warmup_excluded": skip}


def parse_args():
    p = argparse.ArgumentParser(description="FM-16 reference loop on PyTorch")
    p.add_argument("--steps", type=int, default=10000, help="training steps at most (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initialisation and the data order (default 0)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads (default: all cores)")
    p.add_argument("--eval-every", type=int, default=200, help="evaluate every E steps (default 200)")
    p.add_argument("--target", type=float, default=0.895,
                   help="stop at the first evaluation with accuracy >= A; 0: never (default 0.895)")
    p.add_argument("--json", help="write the run's summary as JSON to this file")
    args = p.parse_args()
    if args.steps < 1 or args.threads < 1 or args.eval_every < 1 or args.seed < 0 or args.target < 0:
        p.error("--steps, --threads and --eval-every want numbers >= 1; --seed and --target >= 0")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_x, train_y = load_split("train")
    test_x, test_y = load_split("t10k")
    net = Net()
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sampler = Sampler(train_x.shape[0], args.seed)

    print(f"fm16 pytorch {torch.__version__}: seed {args.seed}, {torch.get_num_threads()} threads, "
          f"batch {BATCH}, AdamW lr {LR}, up to {args.steps} steps")

    step_ms = []
    evals = []
    at_target = None
    train_time_s = 0.0
    eval_time_s = 0.0
    loss_since_eval = 0.0
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        index = sampler.next()
        x = train_x.index_select(0, index)
        y = train_y.index_select(0, index)
        optimizer.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        loss_since_eval += loss.item()
        seconds = time.perf_counter() - start
        step_ms.append(seconds * 1e3)
        train_time_s += seconds

        if step % args.eval_every != 0 and step != args.steps:
            continue
        eval_start = time.perf_counter()
        e = evaluate(net, test_x, test_y)
        e["eval_time_s"] = time.perf_counter() - eval_start
        e["step"] = step
        e["train_loss"] = loss_since_eval / (step - (evals[-1]["step"] if evals else 0))
        e["train_time_s"] = train_time_s
        eval_time_s += e["eval_time_s"]
        loss_since_eval = 0.0
        evals.append(e)
        print(f"step {step:6d}  train loss {e['train_loss']:.4f}  val loss {e['loss']:.4f}  "
              f"val acc {e['accuracy']:.4f}  train time {train_time_s:.2f} s  (eval {e['eval_time_s']:.2f} s)",
              flush=True)
        if args.target > 0 and e["accuracy"] >= args.target:
            at_target = e
            break

    stats = step_stats(step_ms)
    print(f"per-step time (ms, {stats['count']} steps after {stats['warmup_excluded']} warm-up): "
          f"min {stats['min']:.3f}  median {stats['median']:.3f}  max {stats['max']:.3f}  mean {stats['mean']:.3f}")
    print(f"training time {train_time_s:.3f} s over {len(step_ms)} steps (evaluation {eval_time_s:.3f} s, excluded)")
    print(f"steps to target {args.target:.3f}: "
          + (f"{at_target['step']} ({at_target['train_time_s']:.3f} s)" if at_target else "not reached"))
    print(f"final accuracy {evals[-1]['accuracy']:.4f} at step {evals[-1]['step']}")

    if args.json:
        summary = {
            "loop": "pytorch",
            "torch_version": torch.__version__,
            "seed": args.seed,
            "threads": args.threads,
            "batch_size": BATCH,
            "lr": LR,
            "weight_decay": WEIGHT_DECAY,
            "eval_every": args.eval_every,
            "target": args.target,
            "steps": len(step_ms),
            "step_ms": stats,
            "train_time_s": train_time_s,
            "eval_time_s": eval_time_s,
            "steps_to_target": at_target["step"] if at_target else None,
            "time_to_target_s": at_target["train_time_s"] if at_target else None,
            "final_accuracy": evals[-1]["accuracy"],
            "final_loss": evals[-1]["loss"],
            "evals": [{k: e[k] for k in ("step", "accuracy", "loss", "train_loss", "train_time_s", "eval_time_s")}
                      for e in evals],
            "step_times_ms": step_ms,
        }
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
