#include "task_support/losses.hpp"

#include <algorithm>
#include <vector>

#include <torch/nn/functional/loss.h>

#include "hpt/error.hpp"

namespace hpt::task_support {

namespace F = torch::nn::functional;

LossKind loss_kind_from_name(const std::string& name) {
  if (name == "mse") return LossKind::MeanSquaredError;
  if (name == "cross_entropy") return LossKind::CrossEntropy;
  throw BadInput("unknown loss '" + name + "' (expected mse or cross_entropy)");
}

namespace {

// Cross entropy over the last dimension of `outputs`, whatever the leading dimensions.
torch::Tensor cross_entropy(const torch::Tensor& outputs, const torch::Tensor& targets,
                            F::CrossEntropyFuncOptions::reduction_t reduction) {
  return F::cross_entropy(outputs.reshape({-1, outputs.size(-1)}), targets.reshape({-1}),
                          F::CrossEntropyFuncOptions().reduction(reduction));
}

}  // namespace

torch::Tensor mean_loss(LossKind kind, const torch::Tensor& outputs, const torch::Tensor& targets) {
  if (kind == LossKind::CrossEntropy) return cross_entropy(outputs, targets, torch::kMean);
  return F::mse_loss(outputs, targets);
}

Metrics evaluate_in_chunks(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                           const torch::Tensor& inputs, const torch::Tensor& targets, std::int64_t chunk,
                           LossKind kind, std::optional<torch::Device> device) {
  torch::NoGradGuard no_grad;
  const torch::Device on = device.value_or(inputs.device());
  const std::int64_t rows = inputs.size(0);
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions(torch::kFloat64).device(on));
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions(torch::kInt64).device(on));
  for (std::int64_t start = 0; start < rows; start += chunk) {
    const std::int64_t length = std::min(chunk, rows - start);
    torch::Tensor outputs = forward(inputs.narrow(0, start, length).to(on, /*non_blocking=*/true));
    torch::Tensor expected = targets.narrow(0, start, length).to(on, /*non_blocking=*/true);
    if (kind == LossKind::CrossEntropy) {
      loss_sum += cross_entropy(outputs, expected, torch::kSum).to(torch::kFloat64);
      correct += outputs.argmax(-1).eq(expected).sum();
    } else {
      loss_sum += F::mse_loss(outputs, expected, F::MSELossFuncOptions().reduction(torch::kSum)).to(torch::kFloat64);
    }
  }
  const double elements = static_cast<double>(targets.numel());
  Metrics metrics{{"val_loss", loss_sum.item<double>() / elements}};
  if (kind == LossKind::CrossEntropy)
    metrics["val_accuracy"] = static_cast<double>(correct.item<std::int64_t>()) / elements;
  return metrics;
}

torch::Tensor per_example_losses(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                                 const torch::Tensor& inputs, const torch::Tensor& targets, std::int64_t chunk,
                                 LossKind kind, std::optional<torch::Device> device) {
  torch::NoGradGuard no_grad;
  const torch::Device on = device.value_or(inputs.device());
  const std::int64_t rows = inputs.size(0);
  std::vector<torch::Tensor> parts;
  for (std::int64_t start = 0; start < rows; start += chunk) {
    const std::int64_t length = std::min(chunk, rows - start);
    torch::Tensor outputs = forward(inputs.narrow(0, start, length).to(on, /*non_blocking=*/true));
    torch::Tensor expected = targets.narrow(0, start, length).to(on, /*non_blocking=*/true);
    torch::Tensor elementwise =
        kind == LossKind::CrossEntropy
            ? cross_entropy(outputs, expected, torch::kNone)
            : F::mse_loss(outputs, expected, F::MSELossFuncOptions().reduction(torch::kNone));
    parts.push_back(elementwise.to(torch::kFloat32).reshape({length, -1}).mean(1));
  }
  return torch::cat(parts).to(torch::kCPU);
}

}  // namespace hpt::task_support
