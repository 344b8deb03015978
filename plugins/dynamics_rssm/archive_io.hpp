// Reading and writing the rssm model's state in a checkpoint archive: scalars as
// IValues, vectors of doubles as float64 tensors, and errors that name the missing key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "hpt/archive.hpp"
#include "hpt/error.hpp"

namespace hpt::rssm {

inline torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key) {
  return hpt::read_tensor(archive, key, "dynamics rssm");
}

inline c10::IValue read_value(torch::serialize::InputArchive& archive, const std::string& key) {
  return hpt::read_value(archive, key, "dynamics rssm");
}

inline torch::Tensor tensor_of(const std::vector<double>& values) {
  return torch::tensor(values, torch::kFloat64);
}

inline std::vector<double> doubles_of(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace hpt::rssm
