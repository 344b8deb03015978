// Learning-rate schedules for optimizers: a factor on the base learning rate for
// every step, and reduce-on-plateau state driven by evaluation metrics.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include <torch/serialize/archive.h>

#include "hpt/types.hpp"
#include "hpt/state_writer.hpp"

namespace hpt {

struct LrScheduleConfig {
  enum class Kind { Constant, WarmupCosine, Step, Plateau };

  Kind kind = Kind::Constant;
  // warmup_cosine: the factor rises linearly from 1/warmup_steps at step 1 to 1 at
  // step `warmup_steps`, then follows a cosine down to `min_lr_ratio` at step
  // `decay_steps` and stays there.
  std::int64_t warmup_steps = 0;
  std::int64_t decay_steps = 0;
  double min_lr_ratio = 0.0;  // also the floor of plateau's reductions
  // step: the factor is gamma^floor((step - 1) / step_size).
  std::int64_t step_size = 1;
  double gamma = 0.1;
  // plateau: watches `plateau_metric` (lower is better for mode "min", higher for
  // "max"); an evaluation improves when it beats the best so far by the relative
  // `plateau_threshold`. When more than `plateau_patience` evaluations in a row fail
  // to improve, the factor is multiplied by `plateau_factor` and the count restarts
  // (PyTorch's ReduceLROnPlateau with threshold_mode "rel" and no cooldown).
  std::string plateau_metric = "val_loss";
  bool plateau_maximize = false;
  double plateau_factor = 0.1;
  std::int64_t plateau_patience = 10;
  double plateau_threshold = 1e-4;
};

// "constant", "warmup_cosine", "step", "plateau"; and back (throws hpt::BadInput naming
// `option` for an unknown name).
const char* to_string(LrScheduleConfig::Kind kind);
LrScheduleConfig::Kind schedule_kind_from_string(const std::string& name, const std::string& option);

class LrSchedule {
 public:
  // Throws hpt::BadInput when the settings contradict each other (e.g. decay_steps
  // not after warmup_steps).
  explicit LrSchedule(LrScheduleConfig config);

  const LrScheduleConfig& config() const { return config_; }

  // The multiplier of the base learning rate at `step` (1-based).
  double factor(std::int64_t step) const;

  // Feeds an evaluation to reduce-on-plateau; other schedules ignore it. Throws
  // hpt::BadInput when the watched metric is missing from `metrics`.
  void on_evaluation(const Metrics& metrics);

  // Reduce-on-plateau state: the best metric so far, evaluations since it, the
  // accumulated reduction.
  double plateau_best() const { return best_; }
  std::int64_t plateau_bad_evaluations() const { return bad_evaluations_; }
  double plateau_reduction() const { return reduction_; }

  // The state above, under keys prefixed with "schedule/". Loading checks that the
  // archive was written by the same kind of schedule.
  void save(hpt::StateWriter& state) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  bool improves(double value) const;

  LrScheduleConfig config_;
  double best_ = std::numeric_limits<double>::quiet_NaN();  // NaN: no evaluation yet
  std::int64_t bad_evaluations_ = 0;
  double reduction_ = 1.0;
};

}  // namespace hpt
