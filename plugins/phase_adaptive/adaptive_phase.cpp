// PhaseController "adaptive": real steps first, then predicted phases whose horizon grows
// after phases that paid off and shrinks after ones that did not.
//
//   warm-up        `warmup_steps` real steps before the first predicted phase;
//   spacing        at least `min_real_steps` real steps (the Correct step included) between
//                  phases;
//   confidence     a phase only when the dynamics model's confidence after the last real
//                  step (TrainingState::confidence) reaches `confidence_threshold`; below
//                  it, one more real step and look again;
//   horizon        starts at `initial_horizon`; a phase paid off when it kept every planned
//                  step and its probe loss ended at most `payoff_tolerance` (a fraction)
//                  above where it started: the horizon grows by `grow` (at least one step),
//                  up to `max_horizon`; otherwise (stopped early, rolled back, loss worse)
//                  it shrinks by `shrink`, down to `min_horizon`. The tolerance exists
//                  because on noisy tasks the probe right after a phase sits a little above
//                  the one before it even when the phase moved training on (on FM-16, nearly
//                  every phase), and the real steps after the phase bring it back down.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"

namespace {

class AdaptivePhase : public hpt::PhaseController {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_int("warmup_steps", 200, "real steps before the first predicted phase", 0),
        hpt::option_int("min_real_steps", 5, "real steps between two predicted phases (the Correct step included)",
                        1),
        hpt::option_float("confidence_threshold", 0.3, "smallest dynamics-model confidence that starts a phase", 0.0,
                          1.0),
        hpt::option_int("initial_horizon", 10, "predicted steps of the first phase", 1),
        hpt::option_int("min_horizon", 2, "shortest horizon", 1),
        hpt::option_int("max_horizon", 100, "longest horizon", 1),
        hpt::option_float("grow", 1.5, "horizon multiplier after a phase that paid off", 1.0),
        hpt::option_float("shrink", 0.5, "horizon multiplier after a phase that did not", 0.0, 1.0),
        hpt::option_float("payoff_tolerance", 0.0,
                          "a phase still paid off when its probe loss rose by at most this fraction", 0.0),
    };
  }

  AdaptivePhase(const hpt::PluginContext&, const hpt::Options& options)
      : warmup_steps_(options.get_int("warmup_steps")),
        min_real_steps_(options.get_int("min_real_steps")),
        confidence_threshold_(options.get_float("confidence_threshold")),
        min_horizon_(options.get_int("min_horizon")),
        max_horizon_(options.get_int("max_horizon")),
        grow_(options.get_float("grow")),
        shrink_(options.get_float("shrink")),
        payoff_tolerance_(options.get_float("payoff_tolerance")),
        horizon_(static_cast<double>(options.get_int("initial_horizon"))) {
    if (min_horizon_ > max_horizon_)
      throw hpt::BadInput("phase adaptive: min_horizon (" + std::to_string(min_horizon_) + ") is above max_horizon (" +
                          std::to_string(max_horizon_) + ")");
    const auto initial = options.get_int("initial_horizon");
    if (initial < min_horizon_ || initial > max_horizon_)
      throw hpt::BadInput("phase adaptive: initial_horizon (" + std::to_string(initial) +
                          ") must lie in [min_horizon, max_horizon] = [" + std::to_string(min_horizon_) + ", " +
                          std::to_string(max_horizon_) + "]");
  }

  hpt::PhaseDecision decide(const hpt::TrainingState& state) override {
    if (state.real_steps < warmup_steps_) return {hpt::PhaseKind::Full, warmup_steps_ - state.real_steps};
    if (state.steps_since_phase < min_real_steps_)
      return {hpt::PhaseKind::Full, min_real_steps_ - state.steps_since_phase};
    if (state.confidence < confidence_threshold_) return {hpt::PhaseKind::Full, 1};
    return {hpt::PhaseKind::Predict, static_cast<std::int64_t>(std::lround(horizon_))};
  }

  void phase_ended(const hpt::PhaseOutcome& outcome) override {
    const bool paid_off = !outcome.rolled_back && outcome.applied >= outcome.planned &&
                          outcome.loss_after <= outcome.loss_before + std::abs(outcome.loss_before) * payoff_tolerance_;
    const double lo = static_cast<double>(min_horizon_), hi = static_cast<double>(max_horizon_);
    horizon_ = paid_off ? std::clamp(std::max(horizon_ * grow_, horizon_ + 1.0), lo, hi)
                        : std::clamp(horizon_ * shrink_, lo, hi);
  }

  void save(hpt::StateWriter& state) const override {
    state.write("horizon", c10::IValue(horizon_));
  }

  void load(torch::serialize::InputArchive& archive) override {
    horizon_ = hpt::read_value(archive, "horizon", "phase adaptive").toDouble();
  }

 private:
  std::int64_t warmup_steps_;
  std::int64_t min_real_steps_;
  double confidence_threshold_;
  std::int64_t min_horizon_;
  std::int64_t max_horizon_;
  double grow_;
  double shrink_;
  double payoff_tolerance_;

  double horizon_;  // kept fractional so repeated growth compounds
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::PhaseController, "adaptive", "1.0.0",
           "warm-up, spacing and a confidence threshold; horizon grown after phases that paid off", AdaptivePhase,
           AdaptivePhase::option_specs)
