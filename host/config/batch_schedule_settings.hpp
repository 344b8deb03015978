// [batch_schedule]: a batch size that grows during the run. Real step n takes
// `multiplier` task batches and accumulates their gradients (the mean of their losses is
// what is differentiated), so its effective batch is multiplier x task.batch_size; the
// learning rate follows `lr_rule` when the multiplier changes. The engine applies it
// (engine/batch_schedule.hpp). An absent section: one batch per real step.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

struct BatchScheduleSettings {
  bool enabled = false;                  // the manifest has a [batch_schedule] section
  // From step-equivalent steps[i] on (the real steps after it), multipliers[i] batches per
  // real step; before steps[0]: 1. Same length, steps strictly increasing.
  std::vector<std::int64_t> steps;
  std::vector<std::int64_t> multipliers;
  std::string lr_rule = "none";          // none, linear (lr x ratio), sqrt (lr x sqrt(ratio))

  // The multiplier of the real step that follows `steps_done` step-equivalents.
  std::int64_t multiplier_after(std::int64_t steps_done) const;
  // The lr factor `lr_rule` asks for when the multiplier goes from `from` to `to`.
  double lr_factor(std::int64_t from, std::int64_t to) const;

  static std::vector<OptionSpec> option_specs();
  static BatchScheduleSettings from(const Options& options, bool enabled);
  // (key, message) pairs for what the key types cannot say; none when the section is fine.
  static std::vector<std::pair<std::string, std::string>> problems(const Options& options);
};

}  // namespace hpt::host
