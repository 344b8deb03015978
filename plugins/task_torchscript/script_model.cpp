#include "script_model.hpp"

#include <memory>
#include <string>

#include "hpt/error.hpp"

namespace hpt::torchscript {

namespace {

// The holder module for the dotted prefix of `name` ("encoder.0" of "encoder.0.weight"),
// created on the way; `leaf` gets the last part ("weight").
torch::nn::Module& holder_of(torch::nn::Module& root, const std::string& name, std::string& leaf) {
  torch::nn::Module* node = &root;
  std::size_t start = 0;
  for (std::size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', start)) {
    const std::string part = name.substr(start, dot - start);
    start = dot + 1;
    auto children = node->named_children();
    if (const auto* child = children.find(part)) {
      node = child->get();
    } else {
      node = node->register_module(part, std::make_shared<torch::nn::Module>("ScriptSubmodule")).get();
    }
  }
  leaf = name.substr(start);
  return *node;
}

}  // namespace

ScriptModelImpl::ScriptModelImpl(torch::jit::Module module) : module_(std::move(module)) {
  std::string leaf;
  for (const auto& parameter : module_.named_parameters(/*recurse=*/true))
    holder_of(*this, parameter.name, leaf).register_parameter(leaf, parameter.value, /*requires_grad=*/true);
  for (const auto& buffer : module_.named_buffers(/*recurse=*/true))
    holder_of(*this, buffer.name, leaf).register_buffer(leaf, buffer.value);
}

torch::Tensor ScriptModelImpl::forward(const torch::Tensor& x) {
  torch::IValue output = module_.forward({x});
  if (!output.isTensor())
    throw RunError("TorchScript module: forward() returned a " + output.tagKind() + ", not a tensor");
  return output.toTensor();
}

void ScriptModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  module_.train(on);
}

}  // namespace hpt::torchscript
