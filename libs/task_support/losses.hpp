// The losses tasks train with, and evaluation of a model on held-out data in chunks.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <torch/types.h>

#include "hpt/types.hpp"

namespace hpt::task_support {

enum class LossKind {
  MeanSquaredError,  // outputs and targets of the same shape
  CrossEntropy,      // outputs [N, classes] (or [N, T, classes]), targets int64 class indices
};

// "mse" or "cross_entropy", the names the tasks' `loss` options use.
LossKind loss_kind_from_name(const std::string& name);

// Mean loss over every target element: a scalar autograd can differentiate.
torch::Tensor mean_loss(LossKind kind, const torch::Tensor& outputs, const torch::Tensor& targets);

// `forward` over (inputs, targets) in chunks of `chunk` rows, so large held-out sets
// fit in memory. Returns {"val_loss"} -- the mean loss over every target element --
// and for CrossEntropy also {"val_accuracy"}, the fraction of predictions (argmax of
// the last dimension) equal to their target. Runs without autograd. With `device`, each
// chunk is copied there first (data kept in host memory, the model on a GPU); without,
// the work stays on the inputs' device.
Metrics evaluate_in_chunks(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                           const torch::Tensor& inputs, const torch::Tensor& targets, std::int64_t chunk,
                           LossKind kind, std::optional<torch::Device> device = std::nullopt);

// The loss of each row of `inputs` on its own (the mean over that row's target elements),
// `forward` run over chunks of `chunk` rows without autograd: a 1-D float32 tensor on the
// CPU, one value per row -- what hpt::Task::score_examples() returns. `device` as above.
torch::Tensor per_example_losses(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                                 const torch::Tensor& inputs, const torch::Tensor& targets, std::int64_t chunk,
                                 LossKind kind, std::optional<torch::Device> device = std::nullopt);

}  // namespace hpt::task_support
