#include "small_cnn.hpp"

#include <string>

#include "hpt/error.hpp"

namespace hpt::fashion_mnist {

SmallCnnImpl::SmallCnnImpl(std::int64_t in_channels, const std::vector<std::int64_t>& channels,
                           std::int64_t classes) {
  if (channels.empty()) throw BadInput("the cnn needs at least one entry in `channels`");
  std::int64_t previous = in_channels;
  for (std::size_t i = 0; i < channels.size(); ++i) {
    auto options = torch::nn::Conv2dOptions(previous, channels[i], 3).stride(i == 0 ? 2 : 1).padding(i == 0 ? 0 : 1);
    convs_.push_back(register_module("conv" + std::to_string(i + 1), torch::nn::Conv2d(options)));
    previous = channels[i];
  }
  fc_ = register_module("fc", torch::nn::Linear(previous, classes));
}

torch::Tensor SmallCnnImpl::forward(torch::Tensor x) {
  for (auto& conv : convs_) x = torch::relu(conv->forward(x));
  return fc_->forward(x.mean({2, 3}));
}

}  // namespace hpt::fashion_mnist
