#include "tensor_file.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <torch/serialize.h>

#include "hpt/error.hpp"

namespace hpt::torchscript {

namespace {

// The elements of a pickled list, tensor list or tuple.
std::vector<torch::IValue> elements_of(const torch::IValue& value) {
  if (value.isTensorList()) {
    std::vector<torch::IValue> out;
    for (const auto& t : value.toTensorVector()) out.emplace_back(t);
    return out;
  }
  if (value.isList()) return value.toListRef().vec();
  if (value.isTuple()) return value.toTupleRef().elements().vec();
  return {};
}

}  // namespace

TensorData read_tensor_file(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw BadInput("data file " + path + " does not exist (expected [inputs, targets] written with "
                   "torch::pickle_save or Python's torch.save)");
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw BadInput("data file " + path + " is not a pickled [inputs, targets] (torch::pickle_save or Python's "
                   "torch.save): " + e.what());
  }
  std::vector<torch::IValue> items = elements_of(value);
  if (items.size() != 2 || !items[0].isTensor() || !items[1].isTensor())
    throw BadInput("data file " + path + " must hold a list or tuple of two tensors [inputs, targets], it holds a " +
                   value.tagKind());
  TensorData data{items[0].toTensor(), items[1].toTensor()};
  if (data.inputs.dim() == 0 || data.targets.dim() == 0 || data.inputs.size(0) != data.targets.size(0))
    throw BadInput("data file " + path + ": inputs and targets must have the same first dimension (one row per "
                   "sample), got " + std::to_string(data.inputs.dim() ? data.inputs.size(0) : 0) + " and " +
                   std::to_string(data.targets.dim() ? data.targets.size(0) : 0));
  return data;
}

}  // namespace hpt::torchscript
