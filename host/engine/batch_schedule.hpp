// The dynamic batch size ([batch_schedule]): how many task batches the next real step
// accumulates, and the learning-rate factor its lr_rule asks for when that number
// changes. The multiplier follows from the step count alone; what this class keeps is the
// multiplier whose lr factor has been applied, so that a resumed run (whose optimizer's
// checkpoint holds the scaled lr) does not apply it twice.
#pragma once

#include <cstdint>
#include <optional>

#include <torch/serialize/input-archive.h>

#include "config/batch_schedule_settings.hpp"
#include "hpt/state_writer.hpp"

namespace hpt::host {

class BatchSchedule {
 public:
  explicit BatchSchedule(BatchScheduleSettings settings) : s_(std::move(settings)) {}

  struct Change {
    std::int64_t from = 1, to = 1;
    double lr_factor = 1.0;
  };
  // Before the real step that follows `steps_done` step-equivalents: the change of
  // multiplier since the last call, if any (its lr factor is then taken as applied).
  std::optional<Change> advance(std::int64_t steps_done);
  // Task batches per real step now (1 without the section).
  std::int64_t multiplier() const { return applied_; }

  bool enabled() const { return s_.enabled; }
  const BatchScheduleSettings& settings() const { return s_; }

  // Key "batch_schedule/applied" of the engine's state; an archive without it keeps 1.
  void save(hpt::StateWriter& state) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  BatchScheduleSettings s_;
  std::int64_t applied_ = 1;
};

}  // namespace hpt::host
