#include "config/curriculum_settings.hpp"

#include <algorithm>
#include <cmath>

namespace hpt::host {

double CurriculumSettings::fraction_at(std::int64_t step) const {
  const double span = static_cast<double>(full_at_step - score_at_step);
  const double p = span <= 0.0 ? 1.0 : std::clamp(static_cast<double>(step - score_at_step) / span, 0.0, 1.0);
  const double s = start_fraction;
  const double f = pacing == "root" ? std::sqrt(s * s + (1.0 - s * s) * p) : s + (1.0 - s) * p;
  return std::clamp(f, 0.0, 1.0);
}

std::vector<OptionSpec> CurriculumSettings::option_specs() {
  CurriculumSettings c;
  return {
      option_int("score_at_step", c.score_at_step,
                 "train on every example until this step, then score them once with the model of this step "
                 "(0: the initial model)",
                 0),
      option_float("start_fraction", c.start_fraction,
                   "the easiest fraction of the training examples the pool starts with, 0 < f <= 1", 0.0, 1.0),
      option_int("full_at_step", c.full_at_step,
                 "the pool holds every example once this many steps are done (required, greater than score_at_step)", 0),
      option_string("pacing", c.pacing,
                    "how the pool grows from start_fraction to 1: linear, or root (fast at first, "
                    "sqrt(s^2 + (1 - s^2) p))",
                    {"linear", "root"}),
      option_float("min_growth", c.min_growth,
                   "the pool is re-restricted once it grew by at least this fraction of the examples, 0 < g <= 1", 0.0,
                   1.0),
  };
}

CurriculumSettings CurriculumSettings::from(const Options& o, bool enabled) {
  CurriculumSettings c;
  c.enabled = enabled;
  c.score_at_step = o.get_int("score_at_step");
  c.start_fraction = o.get_float("start_fraction");
  c.full_at_step = o.get_int("full_at_step");
  c.pacing = o.get_string("pacing");
  c.min_growth = o.get_float("min_growth");
  return c;
}

std::vector<std::pair<std::string, std::string>> CurriculumSettings::problems(const Options& o) {
  std::vector<std::pair<std::string, std::string>> out;
  if (o.get_float("start_fraction") <= 0.0)
    out.emplace_back("start_fraction", "'curriculum.start_fraction' must be a float in (0, 1] (e.g. 0.25)");
  if (o.get_float("min_growth") <= 0.0)
    out.emplace_back("min_growth", "'curriculum.min_growth' must be a float in (0, 1] (e.g. 0.01)");
  if (o.get_int("full_at_step") <= o.get_int("score_at_step"))
    out.emplace_back("full_at_step", "'curriculum.full_at_step' is required and must be greater than "
                                     "'curriculum.score_at_step' (" + std::to_string(o.get_int("score_at_step")) +
                                     "): the pool holds every example once that many steps are done");
  return out;
}

}  // namespace hpt::host
