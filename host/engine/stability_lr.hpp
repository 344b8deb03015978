// The stability-driven learning rate ([stability]): after every real step it looks at
// the loss and the gradient norm and answers with a factor for the learning rate.
//
//   a step is unstable when                                         factor
//   its loss or gradient norm is not finite                         cut
//   loss > loss_jump x the loss EMA                                 cut
//   gradient norm > its EMA + grad_sigma std. devs (after warmup)   cut
//   otherwise, every grow_every-th stable step in a row             grow
//
// For `recovery` steps after a cut, only a loss above the one that caused it (still
// rising, or not finite) cuts again: the weights a spike left behind take a few steps to
// recover, and those steps enter the statistics so that they follow the loss.
//
// Its factors together stay within [min_scale, max_scale] (x the configured lr). An
// unstable step does not enter the statistics (they describe the healthy trajectory) and
// restarts the count of stable steps. The engine applies the factor through
// Optimizer::scale_learning_rate; a divergence roll-back calls rolled_back() (the
// statistics start afresh; the monitor's own cut is the roll-back's).
#pragma once

#include <cstdint>
#include <string>

#include <torch/serialize/input-archive.h>

#include "config/stability_settings.hpp"
#include "hpt/state_writer.hpp"

namespace hpt::host {

class StabilityLr {
 public:
  explicit StabilityLr(StabilitySettings settings) : s_(settings) {}

  struct Change {
    double factor = 1.0;  // 1: no change
    bool cut = false;     // true: instability; false: growth
    std::string reason;
  };
  // After a real step that the divergence monitor kept.
  Change observe(double loss, double grad_norm);
  // After a divergence roll-back: the statistics describe the discarded trajectory.
  void rolled_back();

  bool enabled() const { return s_.enabled; }
  const StabilitySettings& settings() const { return s_; }
  double scale() const { return scale_; }  // the product of the factors given so far
  std::int64_t cuts() const { return cuts_; }

  // Keys "stability/..." of the engine's state; load() of an archive without them keeps the start state.
  void save(hpt::StateWriter& state) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  StabilitySettings s_;
  std::int64_t steps_ = 0;         // steps in the statistics
  std::int64_t stable_streak_ = 0;
  std::int64_t cuts_ = 0;
  std::int64_t since_cut_ = -1;    // real steps since the last cut (-1: none yet)
  double cut_loss_ = 0.0;          // the loss that caused it
  double scale_ = 1.0;
  double loss_mean_ = 0.0, grad_mean_ = 0.0, grad_var_ = 0.0;
};

}  // namespace hpt::host
