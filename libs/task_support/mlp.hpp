// A multi-layer perceptron: Linear layers fc1, fc2, ... with ReLU between them. Each
// layer is its own submodule, so the engine forecasts each layer as one group.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace hpt::task_support {

class MlpImpl : public torch::nn::Module {
 public:
  // inputs -> hidden[0] -> ... -> hidden.back() -> outputs; no hidden: one Linear layer.
  MlpImpl(std::int64_t inputs, const std::vector<std::int64_t>& hidden, std::int64_t outputs);

  // x: [N, ...] flattened to [N, inputs]; returns [N, outputs].
  torch::Tensor forward(torch::Tensor x);

 private:
  std::vector<torch::nn::Linear> layers_;
};
TORCH_MODULE(Mlp);

}  // namespace hpt::task_support
