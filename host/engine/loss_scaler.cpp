#include "engine/loss_scaler.hpp"

#include <cmath>

namespace hpt::host {

LossScaler::LossScaler(LossScalerSettings settings) : settings_(settings), scale_(settings.initial_scale) {}

torch::Tensor LossScaler::scale_loss(const torch::Tensor& loss) const { return loss * scale_; }

bool LossScaler::unscale(const std::vector<torch::Tensor>& parameters) const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return true;
  // Dividing by a power of two (every scale GradScaler's rule produces from one) is
  // exact, so the unscaled gradients are those an unscaled backward would give, up to the
  // fp16 rounding the scaling exists to avoid.
  torch::_foreach_mul_(grads, 1.0 / scale_);
  // inf and NaN survive the norm: one reduction, one synchronisation for all of them.
  const double total = torch::stack(torch::_foreach_norm(grads)).sum().item<double>();
  return std::isfinite(total);
}

void LossScaler::save(StateWriter& state) const {
  state.write("loss_scale", torch::tensor(scale_, torch::kFloat64));
  state.write("loss_scale_clean_steps", torch::tensor(clean_steps_, torch::kInt64));
}

void LossScaler::load(torch::serialize::InputArchive& archive) {
  torch::Tensor scale, clean;
  if (archive.try_read("loss_scale", scale)) scale_ = scale.item<double>();
  if (archive.try_read("loss_scale_clean_steps", clean)) clean_steps_ = clean.item<std::int64_t>();
}

void LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= settings_.backoff;
    clean_steps_ = 0;
    return;
  }
  if (++clean_steps_ >= settings_.growth_interval) {
    scale_ *= settings_.growth;
    clean_steps_ = 0;
  }
}

}  // namespace hpt::host
