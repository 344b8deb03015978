// Lookahead (Zhang et al. 2019) around whatever optimizer the run uses ([lookahead],
// config/averaging_settings.hpp): slow weights phi, a copy of the weights when the run
// starts; after every k-th kept real step phi += alpha * (theta - phi), then theta = phi.
// Only real steps count toward k: a predicted phase moves theta, and the next
// synchronisation pulls phi towards where it led (see docs/architecture.md). The
// optimizer's own state is left as it is (the paper's default).
#pragma once

#include <cstdint>
#include <vector>

#include "hpt/hpt.hpp"
#include "config/averaging_settings.hpp"

namespace hpt::host {

class Lookahead {
 public:
  explicit Lookahead(LookaheadSettings settings) : settings_(settings) {}

  bool enabled() const { return settings_.enabled; }
  const std::vector<torch::Tensor>& slow_weights() const { return slow_; }
  std::int64_t steps_since_sync() const { return steps_since_sync_; }

  // The slow weights start as a copy of `weights` (unless a checkpoint gave them).
  void start(Backend& backend, const std::vector<torch::Tensor>& weights);
  // After a kept real step; true when it synchronised (and so moved `weights`).
  bool after_real_step(Backend& backend, const std::vector<torch::Tensor>& weights);

  // lookahead.pt in a checkpoint: "steps_since_sync" and "slow_<i>".
  void save(StateWriter& state) const;
  void load(torch::serialize::InputArchive& archive, const std::vector<torch::Tensor>& weights);

 private:
  LookaheadSettings settings_;
  std::vector<torch::Tensor> slow_;
  std::int64_t steps_since_sync_ = 0;
};

}  // namespace hpt::host
