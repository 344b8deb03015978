#include "hpt/gradient_clipping.hpp"

#include <numeric>

#include <torch/nn/utils/clip_grad.h>

namespace hpt {

namespace {

// Dimensions 1..n-1: a unit is one row along the first dimension.
std::vector<std::int64_t> row_dims(const torch::Tensor& t) {
  std::vector<std::int64_t> dims(static_cast<std::size_t>(t.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  return dims;
}

// L2 norm per unit, shaped to broadcast against `t`.
torch::Tensor unitwise_norm(const torch::Tensor& t) {
  if (t.dim() <= 1) return t.norm();
  return t.norm(2, row_dims(t), /*keepdim=*/true);
}

}  // namespace

double global_grad_norm(const std::vector<torch::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  norms.reserve(parameters.size());
  for (const auto& p : parameters)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2));
  if (norms.empty()) return 0.0;
  torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  return total.item<double>();
}

double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  return torch::nn::utils::clip_grad_norm_(parameters, max_norm);
}

void clip_grad_adaptive(const std::vector<torch::Tensor>& parameters, double clip_ratio, double eps) {
  torch::NoGradGuard no_grad;
  for (const auto& p : parameters) {
    torch::Tensor grad = p.grad();
    if (!grad.defined()) continue;
    torch::Tensor max_norm = unitwise_norm(p).clamp_min(eps).mul_(clip_ratio);
    torch::Tensor grad_norm = unitwise_norm(grad);
    torch::Tensor clipped = grad * (max_norm / grad_norm.clamp_min(1e-6));
    grad.copy_(torch::where(grad_norm > max_norm, clipped, grad));
  }
}

void centralize_gradients(const std::vector<torch::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  for (const auto& p : parameters) {
    torch::Tensor grad = p.grad();
    if (!grad.defined() || grad.dim() < 2) continue;
    grad.sub_(grad.mean(row_dims(grad), /*keepdim=*/true));
  }
}

}  // namespace hpt
