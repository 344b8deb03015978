// PhaseController "bandit": LinUCB (linucb.hpp) over a set of predicted-phase horizons.
//
// Rules before the bandit is asked, in order:
//   - full steps until `warmup` real steps have run;
//   - at least `min_real` real steps after each predicted phase (or refused forecast);
//   - while the dynamics model's confidence (TrainingState::confidence, refreshed after
//     every real step) is under `min_confidence`, one full step at a time.
// Then LinUCB picks a horizon from the context
//   [1 (bias), confidence, loss trend (last loss - its EMA) / EMA clamped to [-1, 1],
//    progress step / max_steps, min(real steps since the last phase, 64) / 64].
// Reward of a phase, from its PhaseOutcome:
//   speed    reward = "steps" (the default; deterministic: two runs of one seed make the
//            same choices): the step-equivalents the phase gained per real step it costs,
//            kept predicted steps / max(1, min_real), the real steps the controller runs
//            after every phase; 0 after a roll-back. Probes (forward passes) are not
//            counted: the measure is backward passes, as the benchmarks count them.
//            reward = "time" (wall clock; differs from run to run): kept predicted steps
//            per second of the phase (probes included), times the seconds one real step
//            takes (training time outside phases / real steps): how many times faster
//            than real steps the phase moved; 0 after a roll-back. Before any real step
//            has been timed, it counts kept steps per planned step.
//   penalty  loss_penalty * max(0, (loss_after - loss_before) / loss_before), the loss
//            given back over the phase
//   reward = speed - penalty
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"
#include "linucb.hpp"

namespace {

constexpr std::size_t kContextSize = 5;

class BanditPhase : public hpt::PhaseController {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_int_list("horizons", {4, 8, 16, 32}, "the predicted-phase lengths the bandit chooses from", 1, 1e6),
        hpt::option_float("alpha", 1.0, "LinUCB exploration: width of the confidence bound", 0.0, 1e3),
        hpt::option_float("ridge", 1.0, "LinUCB regularisation: A starts at ridge * I", 1e-9, 1e6),
        hpt::option_int("warmup", 100, "real steps before the first predicted phase", 0, 1e12),
        hpt::option_int("min_real", 4, "real steps after each predicted phase", 0, 1e12),
        hpt::option_float("min_confidence", 0.3, "under the model's latest confidence, real steps only", 0.0, 1.0),
        hpt::option_float("loss_penalty", 10.0, "reward lost per relative rise of the probe loss over a phase", 0.0, 1e6),
        hpt::option_string("reward", "steps",
                           "what a phase earns: steps (default, deterministic): kept predicted steps per real step "
                           "it costs (min_real); time: how many times faster than a real step it moved, by the "
                           "wall clock (differs from run to run)",
                           {"steps", "time"}),
    };
  }

  BanditPhase(const hpt::PluginContext&, const hpt::Options& options)
      : horizons_(options.get_int_list("horizons")),
        warmup_(options.get_int("warmup")),
        min_real_(options.get_int("min_real")),
        min_confidence_(options.get_float("min_confidence")),
        loss_penalty_(options.get_float("loss_penalty")),
        reward_by_time_(options.get_string("reward") == "time"),
        bandit_(checked(horizons_).size(), kContextSize, options.get_float("alpha"), options.get_float("ridge")) {}

  hpt::PhaseDecision decide(const hpt::TrainingState& state) override {
    awaiting_outcome_ = false;  // a phase that never reported was a refused forecast
    seconds_ = state.seconds;
    real_steps_ = state.real_steps;
    if (state.real_steps < warmup_) return {hpt::PhaseKind::Full, warmup_ - state.real_steps};
    const std::int64_t since = state.real_steps - last_attempt_;
    if (attempted_ && since < min_real_) return {hpt::PhaseKind::Full, min_real_ - since};
    if (state.confidence < min_confidence_) return {hpt::PhaseKind::Full, 1};
    pending_context_ = context(state);
    pending_arm_ = bandit_.choose(pending_context_);
    awaiting_outcome_ = true;
    attempted_ = true;
    last_attempt_ = state.real_steps;
    return {hpt::PhaseKind::Predict, horizons_[pending_arm_]};
  }

  void phase_ended(const hpt::PhaseOutcome& outcome) override {
    const double speed = reward_by_time_ ? speed_by_time(outcome) : speed_in_steps(outcome);
    const double rise = outcome.loss_before != 0.0 ? (outcome.loss_after - outcome.loss_before) / std::abs(outcome.loss_before) : 0.0;
    const double penalty = loss_penalty_ * std::max(0.0, std::isfinite(rise) ? rise : 1.0);
    phase_seconds_ += outcome.seconds;
    if (!awaiting_outcome_) return;
    bandit_.update(pending_arm_, pending_context_, speed - penalty);
    awaiting_outcome_ = false;
  }

  void save(hpt::StateWriter& state) const override {
    bandit_.save(state, "linucb/");
    state.write("attempted", c10::IValue(attempted_));
    state.write("last_attempt", c10::IValue(last_attempt_));
    state.write("awaiting_outcome", c10::IValue(awaiting_outcome_));
    state.write("pending_arm", c10::IValue(static_cast<std::int64_t>(pending_arm_)));
    state.write("pending_context", torch::tensor(pending_context_, torch::kFloat64));
    state.write("seconds", c10::IValue(seconds_));
    state.write("real_steps", c10::IValue(real_steps_));
    state.write("phase_seconds", c10::IValue(phase_seconds_));
  }

  void load(torch::serialize::InputArchive& archive) override {
    bandit_.load(archive, "linucb/");
    attempted_ = hpt::read_value(archive, "attempted", "phase bandit").toBool();
    last_attempt_ = hpt::read_value(archive, "last_attempt", "phase bandit").toInt();
    awaiting_outcome_ = hpt::read_value(archive, "awaiting_outcome", "phase bandit").toBool();
    pending_arm_ = static_cast<std::size_t>(hpt::read_value(archive, "pending_arm", "phase bandit").toInt());
    torch::Tensor context;
    if (!archive.try_read("pending_context", context) || context.numel() != static_cast<std::int64_t>(kContextSize) ||
        pending_arm_ >= horizons_.size())
      throw hpt::BadInput("phase bandit: the checkpoint's pending phase does not fit these horizons");
    context = context.to(torch::kFloat64).contiguous();
    pending_context_.assign(context.data_ptr<double>(), context.data_ptr<double>() + kContextSize);
    seconds_ = hpt::read_value(archive, "seconds", "phase bandit").toDouble();
    real_steps_ = hpt::read_value(archive, "real_steps", "phase bandit").toInt();
    phase_seconds_ = hpt::read_value(archive, "phase_seconds", "phase bandit").toDouble();
  }

 private:
  static const std::vector<std::int64_t>& checked(const std::vector<std::int64_t>& horizons) {
    if (horizons.empty()) throw hpt::BadInput("phase bandit: horizons must list at least one horizon");
    return horizons;
  }

  // Kept predicted steps per real step the phase costs: the min_real that follow it.
  double speed_in_steps(const hpt::PhaseOutcome& outcome) const {
    if (outcome.rolled_back) return 0.0;
    return static_cast<double>(outcome.applied) / static_cast<double>(std::max<std::int64_t>(1, min_real_));
  }

  // How many times faster than a real step the phase moved, by the wall clock.
  double speed_by_time(const hpt::PhaseOutcome& outcome) const {
    const double real_seconds = seconds_ - phase_seconds_;
    if (outcome.seconds <= 0.0) return 0.0;
    if (real_steps_ > 0 && real_seconds > 0.0)
      return static_cast<double>(outcome.applied) / outcome.seconds * (real_seconds / static_cast<double>(real_steps_));
    return static_cast<double>(outcome.applied) / static_cast<double>(std::max<std::int64_t>(1, outcome.planned));
  }

  static std::vector<double> context(const hpt::TrainingState& s) {
    const double trend = s.loss_ema != 0.0 ? (s.last_loss - s.loss_ema) / std::abs(s.loss_ema) : 0.0;
    const double progress = s.max_steps > 0 ? static_cast<double>(s.step) / static_cast<double>(s.max_steps) : 0.0;
    return {1.0, std::clamp(s.confidence, 0.0, 1.0), std::isfinite(trend) ? std::clamp(trend, -1.0, 1.0) : 0.0,
            std::clamp(progress, 0.0, 1.0), static_cast<double>(std::min<std::int64_t>(s.steps_since_phase, 64)) / 64.0};
  }

  std::vector<std::int64_t> horizons_;
  std::int64_t warmup_, min_real_;
  double min_confidence_;
  double loss_penalty_;
  bool reward_by_time_;             // reward = "time"; otherwise "steps"
  hpt::bandit::LinUcb bandit_;

  bool attempted_ = false;          // a predicted phase has been asked for
  std::int64_t last_attempt_ = 0;   // real steps when it was
  bool awaiting_outcome_ = false;   // the last decision was a phase not yet reported
  std::size_t pending_arm_ = 0;
  std::vector<double> pending_context_ = std::vector<double>(kContextSize, 0.0);
  double seconds_ = 0.0;            // training seconds at the latest decision
  std::int64_t real_steps_ = 0;     // real steps at the latest decision
  double phase_seconds_ = 0.0;      // seconds spent in predicted phases so far
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::PhaseController, "bandit", "1.0.0", "LinUCB over predicted-phase horizons", BanditPhase,
           BanditPhase::option_specs)
