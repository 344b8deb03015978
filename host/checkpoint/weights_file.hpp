// Weights files: the named tensors a run starts from (task.init_from) and `hpt eval`
// evaluates, and copying them into a model by name.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace hpt::host {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The tensors of the weights file at `path`, named as named_parameters() and
// named_buffers() name them ("encoder.0.weight"), in any of these forms:
//   - a LibTorch module archive: a run's final_weights.pt, a checkpoint's model.pt;
//   - a pickled dict name -> tensor: `hpt export`'s .weights.pt, torch::pickle_save, and
//     Python's torch.save(model.state_dict(), path) (state_dict_pickle.hpp);
// each of them also as a zstd frame (a checkpoint saved with compression = "zstd").
// Throws hpt::BadInput naming the file (its absolute path) when it is missing or none of these.
NamedTensors read_weights_file(const std::string& path);

// Copies `weights` into the parameters and buffers of `model` by name, without autograd
// (the tensors stay the model's own; dtypes and devices are converted). The names must
// match both ways and the shapes must be equal: otherwise hpt::BadInput
// "<source>: ..." naming every tensor that is missing, unexpected or of another shape.
void copy_weights_into(torch::nn::Module& model, const NamedTensors& weights, const std::string& source);

}  // namespace hpt::host
