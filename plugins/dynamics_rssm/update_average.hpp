// UpdateAverage: per parameter, an exponential moving average of the real updates (the
// direction predicted steps move along), and per group the moving average of the
// update-level feature (log update norm), both bias-corrected like Adam's moments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "hpt/state_writer.hpp"

namespace hpt::rssm {

class UpdateAverage {
 public:
  UpdateAverage(std::size_t groups, double decay);

  // Adds one real step: its update (per parameter, any device) and its per-group levels.
  // The averages are updated in place on the update's device.
  void add(const std::vector<torch::Tensor>& update, const std::vector<double>& group_levels);

  bool empty() const { return count_ == 0; }

  // The bias-corrected average update, as fresh tensors the caller may keep while add()
  // goes on.
  std::vector<torch::Tensor> mean() const;

  // The bias-corrected average level of `group`.
  double mean_level(std::size_t group) const;

  void save(hpt::StateWriter& state, const std::string& prefix) const;
  // Restores what save() wrote; the averages go to `device`.
  void load(torch::serialize::InputArchive& archive, const std::string& prefix, torch::Device device);

 private:
  double correction() const;  // 1 / (1 - decay^count)

  double decay_;
  std::int64_t count_ = 0;
  std::vector<torch::Tensor> average_;
  std::vector<double> levels_;
};

}  // namespace hpt::rssm
