#include "script_model.hpp"

#include <algorithm>
#include <set>
#include <string>

#include "hpt/error.hpp"

namespace hpt::torchscript {

namespace {

std::string flat_name(std::string name) {
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

}  // namespace

ScriptModelImpl::ScriptModelImpl(torch::jit::Module module) : module_(std::move(module)) {
  std::set<std::string> taken;
  auto claim = [&](const std::string& name) {
    std::string flat = flat_name(name);
    if (!taken.insert(flat).second)
      throw BadInput("TorchScript module: parameter or buffer '" + name + "' becomes '" + flat +
                     "', a name another one already has; rename one of them");
    return flat;
  };
  for (const auto& parameter : module_.named_parameters(/*recurse=*/true))
    register_parameter(claim(parameter.name), parameter.value, /*requires_grad=*/true);
  for (const auto& buffer : module_.named_buffers(/*recurse=*/true)) register_buffer(claim(buffer.name), buffer.value);
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
