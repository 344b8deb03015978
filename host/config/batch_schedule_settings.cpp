#include "config/batch_schedule_settings.hpp"

#include <cmath>

namespace hpt::host {

std::int64_t BatchScheduleSettings::multiplier_after(std::int64_t steps_done) const {
  std::int64_t m = 1;
  for (std::size_t i = 0; i < steps.size() && i < multipliers.size(); ++i)
    if (steps_done >= steps[i]) m = multipliers[i];
  return m;
}

double BatchScheduleSettings::lr_factor(std::int64_t from, std::int64_t to) const {
  const double ratio = static_cast<double>(to) / static_cast<double>(from);
  if (lr_rule == "linear") return ratio;
  if (lr_rule == "sqrt") return std::sqrt(ratio);
  return 1.0;
}

std::vector<OptionSpec> BatchScheduleSettings::option_specs() {
  BatchScheduleSettings b;
  return {
      option_int_list("steps", b.steps,
                      "step-equivalents at which the multipliers start (strictly increasing, e.g. [1000, 3000])", 0),
      option_int_list("multipliers", b.multipliers,
                      "task batches per real step from the matching entry of `steps` on (e.g. [2, 4])", 1, 1024),
      option_string("lr_rule", b.lr_rule,
                    "how the lr follows a change of the multiplier: none, linear (x the ratio), sqrt (x its root)",
                    {"none", "linear", "sqrt"}),
  };
}

BatchScheduleSettings BatchScheduleSettings::from(const Options& o, bool enabled) {
  BatchScheduleSettings b;
  b.enabled = enabled;
  b.steps = o.get_int_list("steps");
  b.multipliers = o.get_int_list("multipliers");
  b.lr_rule = o.get_string("lr_rule");
  return b;
}

std::vector<std::pair<std::string, std::string>> BatchScheduleSettings::problems(const Options& o) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto& steps = o.get_int_list("steps");
  const auto& multipliers = o.get_int_list("multipliers");
  if (steps.empty())
    out.emplace_back("steps", "'batch_schedule.steps' must list the step-equivalents where the multipliers start "
                              "(e.g. steps = [1000, 3000], multipliers = [2, 4])");
  if (steps.size() != multipliers.size())
    out.emplace_back("multipliers", "'batch_schedule.multipliers' must have one entry per entry of "
                                    "'batch_schedule.steps' (" + std::to_string(steps.size()) + " entries)");
  for (std::size_t i = 1; i < steps.size(); ++i)
    if (steps[i] <= steps[i - 1]) {
      out.emplace_back("steps", "'batch_schedule.steps' must be strictly increasing (" + std::to_string(steps[i - 1]) +
                                    " then " + std::to_string(steps[i]) + ")");
      break;
    }
  return out;
}

}  // namespace hpt::host
