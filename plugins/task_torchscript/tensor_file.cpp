#include "tensor_file.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include <torch/serialize.h>

#include "hpt/error.hpp"

namespace hpt::torchscript {

namespace {

const char* const kLayouts =
    "expected {\"inputs\": X, \"targets\": Y}, {\"x\": X, \"y\": Y}, or a pair [X, Y] / (X, Y) such as a "
    "TensorDataset's tensors, saved with torch.save or torch::pickle_save";

// "Tensor [320, 6]", "int", "str", ...: what a pickled value is, for messages.
std::string describe(const torch::IValue& value) {
  if (!value.isTensor()) return value.tagKind();
  const torch::Tensor& t = value.toTensor();
  std::string shape = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) shape += (d ? ", " : "") + std::to_string(t.size(d));
  return "Tensor " + shape + "]";
}

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

// What `value` holds, as the error messages show it.
std::string found(const torch::IValue& value) {
  if (value.isGenericDict()) {
    std::string keys;
    for (const auto& item : value.toGenericDict())
      keys += (keys.empty() ? "" : ", ") +
              (item.key().isString() ? "'" + item.key().toStringRef() + "'" : item.key().tagKind()) + ": " +
              describe(item.value());
    return "a dict {" + keys + "}";
  }
  if (value.isList() || value.isTensorList() || value.isTuple()) {
    std::vector<torch::IValue> items = elements_of(value);
    std::string list;
    for (const auto& item : items) list += (list.empty() ? "" : ", ") + describe(item);
    return std::string(value.isTuple() ? "a tuple" : "a list") + " of " + std::to_string(items.size()) + " (" +
           list + ")";
  }
  return "a " + describe(value);
}

// The (inputs, targets) of a pickled dict, or nothing when it has neither key pair.
std::optional<std::pair<torch::IValue, torch::IValue>> pair_in_dict(const torch::IValue& value) {
  static const std::pair<const char*, const char*> kKeys[] = {{"inputs", "targets"}, {"x", "y"}};
  const auto dict = value.toGenericDict();
  for (const auto& [x, y] : kKeys) {
    auto ix = dict.find(torch::IValue(std::string(x))), iy = dict.find(torch::IValue(std::string(y)));
    if (ix != dict.end() && iy != dict.end()) return std::make_pair(ix->value(), iy->value());
  }
  return std::nullopt;
}

}  // namespace

TensorData read_tensor_file(const std::string& path) {
  if (!std::filesystem::exists(path)) throw BadInput("data file " + path + " does not exist (" + kLayouts + ")");
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw BadInput("data file " + path + " is not a file torch.save or torch::pickle_save wrote (" + kLayouts +
                   "): " + e.what());
  }
  std::optional<std::pair<torch::IValue, torch::IValue>> pair;
  if (value.isGenericDict()) {
    pair = pair_in_dict(value);
  } else {
    std::vector<torch::IValue> items = elements_of(value);
    if (items.size() == 2) pair = std::make_pair(items[0], items[1]);
  }
  if (!pair || !pair->first.isTensor() || !pair->second.isTensor())
    throw BadInput("data file " + path + " holds " + found(value) + "; " + kLayouts);
  TensorData data{pair->first.toTensor(), pair->second.toTensor()};
  if (data.inputs.dim() == 0 || data.targets.dim() == 0 || data.inputs.size(0) != data.targets.size(0))
    throw BadInput("data file " + path + ": inputs and targets must have the same first dimension (one row per "
                   "sample), got " + describe(data.inputs) + " and " + describe(data.targets));
  return data;
}

}  // namespace hpt::torchscript
