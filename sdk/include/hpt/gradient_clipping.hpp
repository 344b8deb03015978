// Gradient conditioning applied between backward and the optimizer update: the global
// gradient norm, clipping by that norm, adaptive gradient clipping and gradient
// centralisation. Every function works in place on the `.grad()` of the given
// parameters and skips parameters without a gradient.
#pragma once

#include <vector>

#include <torch/types.h>

namespace hpt {

// Global L2 norm of all gradients: the norm of the per-tensor norms (computed the way
// torch::nn::utils::clip_grad_norm_ computes it). 0 when no parameter has a gradient.
double global_grad_norm(const std::vector<torch::Tensor>& parameters);

// Scales all gradients by min(1, max_norm / (norm + 1e-6)) with torch's
// clip_grad_norm_. Returns the global norm before clipping.
double clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm);

// Adaptive gradient clipping (Brock et al. 2021, "High-Performance Large-Scale Image
// Recognition Without Normalization"). Per unit, a gradient whose norm exceeds
// clip_ratio * max(parameter norm, eps) is scaled down to that size. Units are the rows
// along the first (output) dimension for tensors with two or more dimensions, and the
// whole tensor otherwise.
void clip_grad_adaptive(const std::vector<torch::Tensor>& parameters, double clip_ratio, double eps = 1e-3);

// Gradient centralisation (Yong et al. 2020): for tensors with two or more dimensions,
// subtracts from each gradient row its mean over every dimension but the first.
void centralize_gradients(const std::vector<torch::Tensor>& parameters);

}  // namespace hpt
