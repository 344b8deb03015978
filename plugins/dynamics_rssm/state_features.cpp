#include "state_features.hpp"

#include <algorithm>
#include <cmath>

#include "archive_io.hpp"
#include "hpt/error.hpp"

namespace hpt::rssm {

namespace {

constexpr double kTiny = 1e-12;  // floor under norms and losses before a logarithm

double log_ratio(double value, double reference) {
  return std::log(std::max(value, kTiny) / std::max(reference, kTiny));
}

}  // namespace

StateFeatures::StateFeatures(std::vector<std::size_t> group_of, std::size_t groups, double decay)
    : group_of_(std::move(group_of)), groups_(groups), decay_(decay), norm_ref_(groups, 0.0), previous_norms_(groups, 0.0) {
  for (std::size_t g : group_of_)
    if (g >= groups_) throw RunError("dynamics rssm: a parameter's group index is out of range");
}

std::vector<double> StateFeatures::group_dots(const std::vector<torch::Tensor>& update) const {
  std::vector<torch::Tensor> dots;
  dots.reserve(update.size());
  for (std::size_t p = 0; p < update.size(); ++p) dots.push_back(update[p].reshape(-1).dot(previous_update_[p].reshape(-1)));
  torch::Tensor host = torch::stack(dots).to(torch::kCPU, torch::kFloat64);
  const double* d = host.data_ptr<double>();
  std::vector<double> per_group(groups_, 0.0);
  for (std::size_t p = 0; p < update.size(); ++p) per_group[group_of_[p]] += d[p];
  return per_group;
}

void StateFeatures::encode(const StepRecord& record, float* out) {
  if (record.group_update_norms.size() != groups_)
    throw RunError("dynamics rssm: a step record has " + std::to_string(record.group_update_norms.size()) +
                   " group update norms, the layout has " + std::to_string(groups_) + " groups");
  if (!record.update.empty() && record.update.size() != group_of_.size())
    throw RunError("dynamics rssm: a step record has " + std::to_string(record.update.size()) +
                   " update tensors, the layout has " + std::to_string(group_of_.size()) + " parameters");
  const bool first = count_ == 0;
  if (first) {
    loss_ref_ = record.loss;
    grad_ref_ = record.grad_norm;
    norm_ref_ = record.group_update_norms;
    loss_mean_ = record.loss;
    grad_mean_ = record.grad_norm;
  }
  if (lr_ref_ <= 0.0 && record.learning_rate > 0.0) lr_ref_ = record.learning_rate;

  out[kLossLevel] = static_cast<float>(log_ratio(record.loss, loss_ref_));
  double loss_sd = std::max({std::sqrt(loss_var_), 1e-3 * std::abs(loss_mean_), kTiny});
  out[kLossChange] = static_cast<float>(std::clamp((record.loss - loss_mean_) / loss_sd, -4.0, 4.0));
  out[kGradLevel] = static_cast<float>(log_ratio(record.grad_norm, grad_ref_));
  out[kGradChange] = static_cast<float>(log_ratio(record.grad_norm, grad_mean_));

  const bool have_previous = !record.update.empty() && !previous_update_.empty();
  std::vector<double> dots = have_previous ? group_dots(record.update) : std::vector<double>(groups_, 0.0);
  for (std::size_t g = 0; g < groups_; ++g) {
    const double norm = record.group_update_norms[g];
    out[update_level_index(g)] = static_cast<float>(log_ratio(norm, norm_ref_[g]));
    const double denominator = norm * previous_norms_[g];
    out[cosine_index(g)] = static_cast<float>(denominator > kTiny ? std::clamp(dots[g] / denominator, -1.0, 1.0) : 0.0);
  }
  out[learning_rate_index()] =
      static_cast<float>(lr_ref_ > 0.0 ? std::log(std::max(record.learning_rate, 1e-6 * lr_ref_) / lr_ref_) : 0.0);
  out[phase_index()] = record.kind == StepKind::Correct ? 1.0f : 0.0f;

  // Statistics after the record, for the next one.
  const double delta = record.loss - loss_mean_;
  loss_mean_ += (1.0 - decay_) * delta;
  loss_var_ = decay_ * (loss_var_ + (1.0 - decay_) * delta * delta);
  grad_mean_ = decay_ * grad_mean_ + (1.0 - decay_) * record.grad_norm;
  previous_norms_ = record.group_update_norms;
  if (!record.update.empty()) {
    if (previous_update_.empty()) {
      for (const auto& u : record.update) previous_update_.push_back(u.detach().clone());
    } else {
      for (std::size_t p = 0; p < record.update.size(); ++p) previous_update_[p].copy_(record.update[p]);
    }
  }
  ++count_;
}

double StateFeatures::loss_of_level(double level) const { return std::max(loss_ref_, kTiny) * std::exp(level); }

void StateFeatures::save(hpt::StateWriter& state, const std::string& prefix) const {
  state.write(prefix + "count", c10::IValue(count_));
  state.write(prefix + "statistics", tensor_of({loss_ref_, grad_ref_, lr_ref_, loss_mean_, loss_var_, grad_mean_}));
  state.write(prefix + "norm_ref", tensor_of(norm_ref_));
  state.write(prefix + "previous_norms", tensor_of(previous_norms_));
  state.write(prefix + "previous_updates", c10::IValue(static_cast<std::int64_t>(previous_update_.size())));
  for (std::size_t p = 0; p < previous_update_.size(); ++p)
    state.write(prefix + "previous_update_" + std::to_string(p), previous_update_[p]);
}

void StateFeatures::load(torch::serialize::InputArchive& archive, const std::string& prefix, torch::Device device) {
  count_ = read_value(archive, prefix + "count").toInt();
  std::vector<double> s = doubles_of(read_tensor(archive, prefix + "statistics"));
  if (s.size() != 6) throw BadInput("dynamics rssm: the checkpoint's feature statistics have the wrong size");
  loss_ref_ = s[0], grad_ref_ = s[1], lr_ref_ = s[2], loss_mean_ = s[3], loss_var_ = s[4], grad_mean_ = s[5];
  norm_ref_ = doubles_of(read_tensor(archive, prefix + "norm_ref"));
  previous_norms_ = doubles_of(read_tensor(archive, prefix + "previous_norms"));
  if (norm_ref_.size() != groups_ || previous_norms_.size() != groups_)
    throw BadInput("dynamics rssm: the checkpoint has " + std::to_string(norm_ref_.size()) +
                   " parameter groups, this model has " + std::to_string(groups_));
  const std::int64_t n = read_value(archive, prefix + "previous_updates").toInt();
  if (n != 0 && static_cast<std::size_t>(n) != group_of_.size())
    throw BadInput("dynamics rssm: the checkpoint has updates for " + std::to_string(n) + " parameters, this model has " +
                   std::to_string(group_of_.size()));
  previous_update_.clear();
  for (std::int64_t p = 0; p < n; ++p)
    previous_update_.push_back(read_tensor(archive, prefix + "previous_update_" + std::to_string(p)).to(device));
}

}  // namespace hpt::rssm
