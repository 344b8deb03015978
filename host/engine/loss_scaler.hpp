// LossScaler: dynamic loss scaling for fp16 training, the algorithm of PyTorch's
// GradScaler. The loss is multiplied by `scale` before backward, so small fp16 gradients
// do not flush to zero; the gradients are divided by it again before clipping and the
// optimizer step. A step whose gradients hold inf or NaN is skipped and the scale backs
// off; after `growth_interval` clean steps in a row the scale grows.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "hpt/state_writer.hpp"

namespace hpt::host {

struct LossScalerSettings {
  double initial_scale = 65536.0;
  double growth = 2.0;
  double backoff = 0.5;
  std::int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerSettings settings);

  // The loss to call backward() on: loss * scale.
  torch::Tensor scale_loss(const torch::Tensor& loss) const;

  // Divides every defined gradient of `parameters` by the scale, in place, and says
  // whether all of them are finite (one device synchronisation).
  bool unscale(const std::vector<torch::Tensor>& parameters) const;

  // After every step: backs off when `finite` is false, else counts towards growth.
  void update(bool finite);

  double scale() const { return scale_; }
  std::int64_t clean_steps() const { return clean_steps_; }

  // The scale and the clean-step count, as "loss_scale" and "loss_scale_clean_steps"
  // (engine.pt keeps them). load() leaves a scaler alone when the archive has neither (a
  // checkpoint of an fp32 or bf16 run).
  void save(StateWriter& state) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  LossScalerSettings settings_;
  double scale_;
  std::int64_t clean_steps_ = 0;  // clean steps since the last change of the scale
};

}  // namespace hpt::host
