#!/usr/bin/python3
"""Python's side of weights_test (issue 16, items 3 and 5), run with Debian's python3-torch.

  weights_roundtrip.py make FOLDER
      A PyTorch module with nested, dotted parameter and buffer names (a Sequential with
      Linear, LayerNorm and BatchNorm1d inside a module), scripted into FOLDER/net.pt, with
      data files as PyTorch users save them: FOLDER/train.pt a dict {"inputs", "targets"},
      FOLDER/val.pt a pair (x, y), FOLDER/dataset.pt a TensorDataset's tensors, and
      FOLDER/start.pt the state_dict (an OrderedDict) of another initialisation.

  weights_roundtrip.py check FOLDER EXPORT
      Loads EXPORT with torch.load into the original, not scripted, module class with
      load_state_dict (strict: every name must match both ways) and prints one JSON object:
      the names, the mean squared error on val.pt, whether the outputs equal those of the
      script module given the same weights, and whether the weights differ from the
      module's initial ones (trained).
"""
import json
import sys

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 16),
                                     nn.BatchNorm1d(16))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(torch.relu(self.encoder(x)))


def make(folder):
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Net()), f"{folder}/net.pt")
    x = torch.randn(256, 6)
    y = torch.stack([x[:, 0] * x[:, 1], torch.sin(x[:, 2])], 1)
    torch.save({"inputs": x[:192], "targets": y[:192]}, f"{folder}/train.pt")
    torch.save((x[192:], y[192:]), f"{folder}/val.pt")
    torch.save(torch.utils.data.TensorDataset(x, y).tensors, f"{folder}/dataset.pt")
    torch.manual_seed(1)
    torch.save(Net().state_dict(), f"{folder}/start.pt")


def check(folder, export):
    state = torch.load(export)
    net = Net()
    net.load_state_dict(state)  # strict=True
    net.eval()
    scripted = torch.jit.load(f"{folder}/net.pt")
    initial = {k: v.clone() for k, v in scripted.state_dict().items()}
    scripted.load_state_dict(state)
    scripted.eval()
    x, y = torch.load(f"{folder}/val.pt")
    with torch.no_grad():
        out = net(x)
        same = torch.equal(out, scripted(x))
        val_loss = nn.functional.mse_loss(out, y).item()
    trained = any(not torch.equal(initial[k], state[k]) for k in initial)
    print(json.dumps({"names": sorted(state.keys()), "val_loss": val_loss, "scripted_equal": same,
                      "trained": trained}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
