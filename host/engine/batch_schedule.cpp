#include "engine/batch_schedule.hpp"

namespace hpt::host {

std::optional<BatchSchedule::Change> BatchSchedule::advance(std::int64_t steps_done) {
  if (!s_.enabled) return std::nullopt;
  const std::int64_t next = s_.multiplier_after(steps_done);
  if (next == applied_) return std::nullopt;
  Change change{applied_, next, s_.lr_factor(applied_, next)};
  applied_ = next;
  return change;
}

void BatchSchedule::save(hpt::StateWriter& state) const {
  state.write("batch_schedule/applied", torch::tensor(applied_, torch::kInt64));
}

void BatchSchedule::load(torch::serialize::InputArchive& a) {
  torch::Tensor applied;
  if (a.try_read("batch_schedule/applied", applied)) applied_ = applied.item<std::int64_t>();
}

}  // namespace hpt::host
