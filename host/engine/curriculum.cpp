#include "engine/curriculum.hpp"

#include <algorithm>
#include <cmath>

namespace hpt::host {

void Curriculum::check(const Task& task, const std::string& task_name, const std::string& source) const {
  if (!enabled() || task.can_score_examples()) return;
  throw BadInput(source + ": [curriculum]: task '" + task_name +
                 "' cannot score its examples (it does not implement Task::score_examples and restrict_examples; "
                 "synthetic and fashion_mnist do): remove the [curriculum] section or use such a task");
}

void Curriculum::score(Task& task) {
  torch::Tensor scores;
  {
    torch::NoGradGuard no_grad;
    task.model().eval();
    try {
      scores = task.score_examples();
    } catch (...) {
      task.model().train();
      throw;
    }
    task.model().train();
  }
  if (!scores.defined() || scores.dim() != 1 || scores.numel() < 1)
    throw RunError("[curriculum]: the task's score_examples() returned " +
                   std::string(scores.defined() ? "a tensor of " + std::to_string(scores.dim()) + " dimension(s) and " +
                                                      std::to_string(scores.numel()) + " element(s)"
                                                : "an undefined tensor") +
                   ", not one difficulty per training example (a 1-D tensor)");
  // Stable: examples of equal difficulty keep their index order, so the ordering is the
  // same on every rank and in every run.
  order_ = std::get<1>(scores.to(torch::kCPU, torch::kFloat64).sort(/*stable=*/true, /*dim=*/0, /*descending=*/false))
               .to(torch::kInt64)
               .contiguous();
  examples_ = order_.numel();
  pool_ = examples_;  // nothing restricted yet
}

std::optional<Curriculum::Change> Curriculum::before_batch(Task& task, std::int64_t step) {
  if (!enabled() || step < settings_.score_at_step) return std::nullopt;
  const bool scored_now = !scored();
  if (scored_now) score(task);
  const double exact = settings_.fraction_at(step) * static_cast<double>(examples_);
  // ceil, but a product that is an integer up to rounding (0.3 * 10) stays that integer.
  const std::int64_t wanted =
      std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(exact - 1e-9)), 1, examples_);
  const std::int64_t threshold =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(settings_.min_growth * examples_ - 1e-9)));
  const bool restricted = pool_ < examples_;
  bool change = false;
  if (wanted == examples_) change = restricted;                 // everything again: lift the restriction
  else if (!restricted) change = wanted < examples_;            // the first pool
  else change = wanted < pool_ || wanted - pool_ >= threshold;  // grown enough (or a shorter schedule on resume)
  if (change) {
    task.restrict_examples(wanted == examples_ ? torch::Tensor() : order_.narrow(0, 0, wanted));
    pool_ = wanted;
  }
  if (!change && !scored_now) return std::nullopt;
  return Change{scored_now, pool_, examples_};
}

void Curriculum::save(StateWriter& state) const {
  state.write("order", order_.defined() ? order_ : torch::empty({0}, torch::kInt64));
  state.write("pool", torch::tensor(pool_, torch::kInt64));
}

void Curriculum::load(torch::serialize::InputArchive& archive) {
  torch::Tensor order, pool;
  archive.read("order", order);
  archive.read("pool", pool);
  if (order.numel() == 0) {
    order_ = torch::Tensor();
    examples_ = pool_ = 0;
    return;
  }
  order_ = order.to(torch::kCPU, torch::kInt64).contiguous();
  examples_ = order_.numel();
  pool_ = std::clamp<std::int64_t>(pool.item<std::int64_t>(), 1, examples_);
}

}  // namespace hpt::host
