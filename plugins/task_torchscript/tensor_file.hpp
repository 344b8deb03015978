// The data file of the torchscript task: inputs and targets, one row per sample.
//
// Format: a list or tuple of two tensors [inputs, targets] with the same first
// dimension, pickled the way LibTorch and PyTorch both read and write:
//   C++:    auto bytes = torch::pickle_save(std::vector<torch::Tensor>{inputs, targets});
//           std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
//   Python: torch.save([inputs, targets], path)
#pragma once

#include <string>

#include <torch/types.h>

namespace hpt::torchscript {

struct TensorData {
  torch::Tensor inputs;
  torch::Tensor targets;
};

// Reads `path`; throws hpt::BadInput naming it when it is missing or not in the format above.
TensorData read_tensor_file(const std::string& path);

}  // namespace hpt::torchscript
