// The small CNN of NiNo's FM-16 / FM-32 tasks (Knyazev et al., "Accelerating Training
// with Neuron Interaction and Nowcasting Networks", utils/vision.py `Net` with its
// defaults): 3x3 convolutions conv1, conv2, ... with ReLU after each -- the first one
// stride 2 and no padding, the others stride 1 and padding 1 ("same") -- then global
// average pooling and one Linear layer `fc` to the classes. channels = [16, 32, 32] is
// FM-16, [32, 64, 64] is FM-32.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

namespace hpt::fashion_mnist {

class SmallCnnImpl : public torch::nn::Module {
 public:
  SmallCnnImpl(std::int64_t in_channels, const std::vector<std::int64_t>& channels, std::int64_t classes);

  // x: [N, in_channels, H, W]; returns logits [N, classes].
  torch::Tensor forward(torch::Tensor x);

 private:
  std::vector<torch::nn::Conv2d> convs_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(SmallCnn);

}  // namespace hpt::fashion_mnist
