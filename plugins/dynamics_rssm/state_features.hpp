// StateFeatures: the feature vector of the training state that the rssm dynamics model
// reads, built from each real StepRecord. It keeps the running statistics the features
// are relative to (the first values seen, moving averages, the previous update), so
// features stay near zero and comparable across tasks.
//
// Layout for G parameter groups (size() = 6 + 2G):
//   0            loss level       log(loss / first loss)
//   1            loss change      (loss - EMA) / EMA standard deviation, clamped to [-4, 4]
//   2            grad level       log(grad norm / first grad norm)
//   3            grad change      log(grad norm / its EMA)
//   4 .. 4+G     update levels    per group: log(update norm / first update norm)
//   4+G .. 4+2G  update cosines   per group: cosine between this update and the previous one
//   4+2G         learning rate    log(lr / first positive lr)
//   5+2G         phase            1 for a Correct step, 0 for a Full step
// The first dynamic_size() = 4 + 2G features describe the trajectory and are what the
// model forecasts; the last two are set from outside. Statistics "before" a record are
// used for its change features; the first record gives 0 for every relative feature.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "hpt/types.hpp"
#include "hpt/state_writer.hpp"

namespace hpt::rssm {

class StateFeatures {
 public:
  // `groups`: parameter groups of the layout; `group_of[p]`: the group of parameter p.
  // `decay`: of the loss and gradient-norm moving averages.
  StateFeatures(std::vector<std::size_t> group_of, std::size_t groups, double decay = 0.95);

  std::size_t size() const { return 6 + 2 * groups_; }
  std::size_t dynamic_size() const { return 4 + 2 * groups_; }
  std::size_t groups() const { return groups_; }

  static constexpr std::size_t kLossLevel = 0;
  static constexpr std::size_t kLossChange = 1;
  static constexpr std::size_t kGradLevel = 2;
  static constexpr std::size_t kGradChange = 3;
  std::size_t update_level_index(std::size_t group) const { return 4 + group; }
  std::size_t cosine_index(std::size_t group) const { return 4 + groups_ + group; }
  std::size_t learning_rate_index() const { return 4 + 2 * groups_; }
  std::size_t phase_index() const { return 5 + 2 * groups_; }

  // Writes the size() features of `record` to `out` and updates the statistics.
  // Throws hpt::RunError when the record's group norms or updates do not fit the layout.
  void encode(const StepRecord& record, float* out);

  // The loss a loss-level feature stands for.
  double loss_of_level(double level) const;

  // Records encoded so far.
  std::int64_t count() const { return count_; }

  // Everything, under keys starting with `prefix`.
  void save(hpt::StateWriter& state, const std::string& prefix) const;
  // Restores what save() wrote; the previous update goes to `device`.
  void load(torch::serialize::InputArchive& archive, const std::string& prefix, torch::Device device);

 private:
  // Per group, the dot product of `update` with the previous update (on the host).
  std::vector<double> group_dots(const std::vector<torch::Tensor>& update) const;

  std::vector<std::size_t> group_of_;
  std::size_t groups_;
  double decay_;

  std::int64_t count_ = 0;
  double loss_ref_ = 0.0, grad_ref_ = 0.0, lr_ref_ = 0.0;
  double loss_mean_ = 0.0, loss_var_ = 0.0, grad_mean_ = 0.0;
  std::vector<double> norm_ref_;                // first update norm of each group
  std::vector<double> previous_norms_;          // update norms of the previous record
  std::vector<torch::Tensor> previous_update_;  // the previous record's update
};

}  // namespace hpt::rssm
