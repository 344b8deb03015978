// The data files of the torchscript task: inputs and targets, one row per sample.
//
// Accepted layouts, pickled the way LibTorch and PyTorch both read and write
// (torch::pickle_save in C++, torch.save in Python):
//   a dict   {"inputs": X, "targets": Y}   (or {"x": X, "y": Y})
//   a pair   [X, Y] or (X, Y)              (a list or a tuple)
//   a TensorDataset's tensors              torch.save(dataset.tensors, path): the pair (X, Y)
// X and Y are tensors with the same first dimension. Python:
//   torch.save({"inputs": x, "targets": y}, "data.pt")
// C++:
//   auto bytes = torch::pickle_save(std::vector<torch::Tensor>{inputs, targets});
//   std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
#pragma once

#include <string>

#include <torch/types.h>

namespace hpt::torchscript {

struct TensorData {
  torch::Tensor inputs;
  torch::Tensor targets;
};

// Reads `path`; throws hpt::BadInput naming it (and what it holds) when it is missing or
// not in one of the layouts above.
TensorData read_tensor_file(const std::string& path);

}  // namespace hpt::torchscript
