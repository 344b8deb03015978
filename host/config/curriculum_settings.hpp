// [curriculum]: easy-to-hard ordering of the training examples (the engine applies it:
// engine/curriculum.hpp). An absent section turns it off.
//
// At score_at_step the task scores every training example once (hpt::Task::score_examples:
// the model of that step's loss on each, a "teacher" ordering); from then on batches come
// only from the easiest ceil(f * N) examples, f growing from start_fraction at
// score_at_step to 1 at full_at_step along the pacing function (Hacohen & Weinshall 2019):
//   linear: f = s + (1 - s) * p
//   root:   f = sqrt(s^2 + (1 - s^2) * p)
// with p = (step - score_at_step) / (full_at_step - score_at_step) in [0, 1].
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

struct CurriculumSettings {
  bool enabled = false;            // the manifest has a [curriculum] section
  std::int64_t score_at_step = 0;  // the examples are scored with the model of this step (0: the initial model)
  double start_fraction = 0.25;    // the easiest fraction of the examples the pool starts with
  std::int64_t full_at_step = 0;   // the pool holds every example once this many steps are done (> score_at_step)
  std::string pacing = "linear";   // linear or root
  double min_growth = 0.01;        // the pool is re-restricted when it grew by this fraction of the examples

  // The fraction of the examples in the pool at `step` (>= score_at_step).
  double fraction_at(std::int64_t step) const;

  static std::vector<OptionSpec> option_specs();
  static CurriculumSettings from(const Options& options, bool enabled);
  // (key, message) pairs for what the key types cannot say; none when the section is fine.
  static std::vector<std::pair<std::string, std::string>> problems(const Options& options);
};

}  // namespace hpt::host
