#include "task_support/mlp.hpp"

#include <string>

namespace hpt::task_support {

MlpImpl::MlpImpl(std::int64_t inputs, const std::vector<std::int64_t>& hidden, std::int64_t outputs) {
  std::int64_t width = inputs;
  for (std::size_t i = 0; i <= hidden.size(); ++i) {
    const std::int64_t next = i < hidden.size() ? hidden[i] : outputs;
    layers_.push_back(register_module("fc" + std::to_string(i + 1), torch::nn::Linear(width, next)));
    width = next;
  }
}

torch::Tensor MlpImpl::forward(torch::Tensor x) {
  x = x.flatten(1);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    x = layers_[i]->forward(x);
    if (i + 1 < layers_.size()) x = torch::relu(x);
  }
  return x;
}

}  // namespace hpt::task_support
