#include "update_average.hpp"

#include <cmath>

#include "archive_io.hpp"
#include "hpt/error.hpp"

namespace hpt::rssm {

UpdateAverage::UpdateAverage(std::size_t groups, double decay) : decay_(decay), levels_(groups, 0.0) {}

void UpdateAverage::add(const std::vector<torch::Tensor>& update, const std::vector<double>& group_levels) {
  torch::NoGradGuard no_grad;
  if (average_.empty())
    for (const auto& u : update) average_.push_back(torch::zeros_like(u));
  if (update.size() != average_.size() || group_levels.size() != levels_.size())
    throw RunError("dynamics rssm: a step's update does not fit the parameters seen before");
  for (std::size_t p = 0; p < update.size(); ++p) average_[p].mul_(decay_).add_(update[p], 1.0 - decay_);
  for (std::size_t g = 0; g < levels_.size(); ++g) levels_[g] = decay_ * levels_[g] + (1.0 - decay_) * group_levels[g];
  ++count_;
}

double UpdateAverage::correction() const { return 1.0 / (1.0 - std::pow(decay_, static_cast<double>(count_))); }

std::vector<torch::Tensor> UpdateAverage::mean() const {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  out.reserve(average_.size());
  const double c = correction();
  for (const auto& a : average_) out.push_back(a.mul(c));
  return out;
}

double UpdateAverage::mean_level(std::size_t group) const { return count_ == 0 ? 0.0 : levels_[group] * correction(); }

void UpdateAverage::save(hpt::StateWriter& state, const std::string& prefix) const {
  state.write(prefix + "count", c10::IValue(count_));
  state.write(prefix + "levels", tensor_of(levels_));
  state.write(prefix + "parameters", c10::IValue(static_cast<std::int64_t>(average_.size())));
  for (std::size_t p = 0; p < average_.size(); ++p) state.write(prefix + "average_" + std::to_string(p), average_[p]);
}

void UpdateAverage::load(torch::serialize::InputArchive& archive, const std::string& prefix, torch::Device device) {
  count_ = read_value(archive, prefix + "count").toInt();
  std::vector<double> levels = doubles_of(read_tensor(archive, prefix + "levels"));
  if (levels.size() != levels_.size())
    throw BadInput("dynamics rssm: the checkpoint averages " + std::to_string(levels.size()) +
                   " parameter groups, this model has " + std::to_string(levels_.size()));
  levels_ = levels;
  const std::int64_t n = read_value(archive, prefix + "parameters").toInt();
  average_.clear();
  for (std::int64_t p = 0; p < n; ++p) average_.push_back(read_tensor(archive, prefix + "average_" + std::to_string(p)).to(device));
}

}  // namespace hpt::rssm
