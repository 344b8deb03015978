#include "hpt/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "hpt/error.hpp"

namespace hpt {

namespace {

constexpr const char* kKindKey = "schedule/kind";
constexpr const char* kBestKey = "schedule/plateau_best";
constexpr const char* kBadKey = "schedule/plateau_bad_evaluations";
constexpr const char* kReductionKey = "schedule/plateau_reduction";

c10::IValue read_value(torch::serialize::InputArchive& archive, const char* key) {
  c10::IValue value;
  if (!archive.try_read(key, value))
    throw BadInput(std::string("optimizer checkpoint has no '") + key + "' (was it written by another optimizer?)");
  return value;
}

}  // namespace

const char* to_string(LrScheduleConfig::Kind kind) {
  switch (kind) {
    case LrScheduleConfig::Kind::Constant: return "constant";
    case LrScheduleConfig::Kind::WarmupCosine: return "warmup_cosine";
    case LrScheduleConfig::Kind::Step: return "step";
    case LrScheduleConfig::Kind::Plateau: return "plateau";
  }
  return "unknown";
}

LrScheduleConfig::Kind schedule_kind_from_string(const std::string& name, const std::string& option) {
  for (auto kind : {LrScheduleConfig::Kind::Constant, LrScheduleConfig::Kind::WarmupCosine,
                    LrScheduleConfig::Kind::Step, LrScheduleConfig::Kind::Plateau})
    if (name == to_string(kind)) return kind;
  throw BadInput("option '" + option + "' must be one of \"constant\", \"warmup_cosine\", \"step\", \"plateau\", got \"" +
                 name + "\"");
}

LrSchedule::LrSchedule(LrScheduleConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  if (c.min_lr_ratio < 0.0 || c.min_lr_ratio > 1.0)
    throw BadInput("option 'min_lr_ratio' must be in [0, 1], got " + std::to_string(c.min_lr_ratio));
  switch (c.kind) {
    case LrScheduleConfig::Kind::Constant: break;
    case LrScheduleConfig::Kind::WarmupCosine:
      if (c.warmup_steps < 0)
        throw BadInput("option 'warmup_steps' must be >= 0, got " + std::to_string(c.warmup_steps));
      if (c.decay_steps <= c.warmup_steps)
        throw BadInput("schedule \"warmup_cosine\" needs option 'decay_steps' (the step where the decay ends, "
                       "usually run.max_steps) greater than 'warmup_steps' (" +
                       std::to_string(c.warmup_steps) + "), got " + std::to_string(c.decay_steps));
      break;
    case LrScheduleConfig::Kind::Step:
      if (c.step_size < 1) throw BadInput("option 'step_size' must be >= 1, got " + std::to_string(c.step_size));
      if (c.gamma <= 0.0) throw BadInput("option 'gamma' must be > 0, got " + std::to_string(c.gamma));
      break;
    case LrScheduleConfig::Kind::Plateau:
      if (c.plateau_metric.empty()) throw BadInput("option 'plateau_metric' must name a metric, got \"\"");
      if (c.plateau_factor <= 0.0 || c.plateau_factor >= 1.0)
        throw BadInput("option 'plateau_factor' must be in (0, 1), got " + std::to_string(c.plateau_factor));
      if (c.plateau_patience < 0)
        throw BadInput("option 'plateau_patience' must be >= 0, got " + std::to_string(c.plateau_patience));
      if (c.plateau_threshold < 0.0)
        throw BadInput("option 'plateau_threshold' must be >= 0, got " + std::to_string(c.plateau_threshold));
      break;
  }
}

double LrSchedule::factor(std::int64_t step) const {
  const auto& c = config_;
  switch (c.kind) {
    case LrScheduleConfig::Kind::Constant: return 1.0;
    case LrScheduleConfig::Kind::WarmupCosine: {
      if (step < c.warmup_steps) return static_cast<double>(std::max<std::int64_t>(step, 0)) / c.warmup_steps;
      double progress = static_cast<double>(step - c.warmup_steps) / static_cast<double>(c.decay_steps - c.warmup_steps);
      progress = std::min(progress, 1.0);
      return c.min_lr_ratio + (1.0 - c.min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
    case LrScheduleConfig::Kind::Step:
      return std::pow(c.gamma, static_cast<double>((std::max<std::int64_t>(step, 1) - 1) / c.step_size));
    case LrScheduleConfig::Kind::Plateau: return reduction_;
  }
  return 1.0;
}

bool LrSchedule::improves(double value) const {
  if (std::isnan(best_)) return true;
  const double t = config_.plateau_threshold;
  return config_.plateau_maximize ? value > best_ * (1.0 + t) : value < best_ * (1.0 - t);
}

void LrSchedule::on_evaluation(const Metrics& metrics) {
  if (config_.kind != LrScheduleConfig::Kind::Plateau) return;
  auto it = metrics.find(config_.plateau_metric);
  if (it == metrics.end()) {
    std::string names;
    for (const auto& [name, value] : metrics) names += (names.empty() ? "" : ", ") + name;
    throw BadInput("option 'plateau_metric' names '" + config_.plateau_metric +
                   "', which the evaluation does not report (it reports: " + names + ")");
  }
  if (improves(it->second)) {
    best_ = it->second;
    bad_evaluations_ = 0;
    return;
  }
  if (++bad_evaluations_ > config_.plateau_patience) {
    reduction_ = std::max(reduction_ * config_.plateau_factor, config_.min_lr_ratio);
    bad_evaluations_ = 0;
  }
}

void LrSchedule::save(hpt::StateWriter& state) const {
  state.write(kKindKey, c10::IValue(std::string(to_string(config_.kind))));
  state.write(kBestKey, c10::IValue(best_));
  state.write(kBadKey, c10::IValue(bad_evaluations_));
  state.write(kReductionKey, c10::IValue(reduction_));
}

void LrSchedule::load(torch::serialize::InputArchive& archive) {
  std::string kind = read_value(archive, kKindKey).toStringRef();
  if (kind != to_string(config_.kind))
    throw BadInput("optimizer checkpoint was written with schedule \"" + kind + "\", but option 'schedule' is \"" +
                   to_string(config_.kind) + "\"");
  best_ = read_value(archive, kBestKey).toDouble();
  bad_evaluations_ = read_value(archive, kBadKey).toInt();
  reduction_ = read_value(archive, kReductionKey).toDouble();
}

}  // namespace hpt
