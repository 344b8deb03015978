// The run's exponential moving average of the weights ([averaging],
// config/averaging_settings.hpp): started as a copy of the weights at start_step, then
// avg = decay * avg + (1 - decay) * weights after every kept real step, through the
// backend's update_average (fused _foreach ops). Predicted steps do not update it: their
// weights reach it through the real step after the phase (see docs/architecture.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"
#include "config/averaging_settings.hpp"

namespace hpt::host {

class WeightAverage {
 public:
  explicit WeightAverage(AveragingSettings settings) : settings_(std::move(settings)) {}

  const AveragingSettings& settings() const { return settings_; }
  bool enabled() const { return settings_.enabled; }
  bool started() const { return !average_.empty(); }
  const std::vector<torch::Tensor>& average() const { return average_; }

  // At `step` (the step count so far): the average starts when it is due. The engine calls
  // it before the first step (start_step 0: the initial weights).
  void start_if_due(Backend& backend, const std::vector<torch::Tensor>& weights, std::int64_t step);
  // After a kept real step that brought the count to `step`.
  void after_real_step(Backend& backend, const std::vector<torch::Tensor>& weights, std::int64_t step);

  // averaging.pt in a checkpoint: "names" (the parameters' names, in the model's order)
  // and "param_<i>" (the averaged values); nothing but "names" before the average started.
  void save(StateWriter& state, const std::vector<std::string>& names) const;
  // Reads save()'s archive; the tensors go to the devices of `weights`.
  void load(torch::serialize::InputArchive& archive, const std::vector<torch::Tensor>& weights);

 private:
  AveragingSettings settings_;
  std::vector<torch::Tensor> average_;  // empty until it starts
};

// The averaged weights in averaging.pt (save()'s archive), by parameter name; empty when
// the average had not started.
std::vector<std::pair<std::string, torch::Tensor>> read_averaged_weights(const std::string& archive_bytes,
                                                                         const std::string& what);

}  // namespace hpt::host
