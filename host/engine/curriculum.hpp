// The [curriculum] driver (config/curriculum_settings.hpp): easy-to-hard ordering of the
// training examples through the task's hooks (hpt::Task::score_examples and
// restrict_examples, sdk/include/hpt/task.hpp).
//
// Before each real step's batch the engine calls before_batch() with the steps done so
// far. Once score_at_step is reached, the task scores every example of this rank's data
// once (the model in eval() mode, no autograd); the examples sorted by difficulty (stable:
// ties keep their index order) are the ordering. The pool, the easiest ceil(f * N) of them
// (f from the pacing function), is handed to restrict_examples() when it first forms,
// whenever it has grown by at least min_growth * N examples, and (lifted: an undefined
// tensor) when it reaches all N. A pool of all N before any restriction restricts nothing,
// so start_fraction = 1 leaves the batches exactly as without [curriculum].
//
// The ordering and the pool size are checkpointed (curriculum.pt); the restriction
// itself is part of the task's state (task.pt), so a resumed run draws the same batches.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "hpt/hpt.hpp"
#include "config/curriculum_settings.hpp"

namespace hpt::host {

class Curriculum {
 public:
  explicit Curriculum(CurriculumSettings settings) : settings_(std::move(settings)) {}

  const CurriculumSettings& settings() const { return settings_; }
  bool enabled() const { return settings_.enabled; }

  // At startup: hpt::BadInput, naming the task (`task_name`) and the manifest (`source`),
  // when the run has [curriculum] and the task cannot score its examples.
  void check(const Task& task, const std::string& task_name, const std::string& source) const;

  // What before_batch() changed.
  struct Change {
    bool scored = false;       // the examples were scored just now
    std::int64_t pool = 0;     // examples the task now draws from
    std::int64_t examples = 0; // N, every example of this rank's data
  };
  // Before the batch of the step after `step` (the steps done so far). Returns what changed:
  // none when neither the scores nor the task's restriction did.
  std::optional<Change> before_batch(Task& task, std::int64_t step);

  bool scored() const { return examples_ > 0; }
  std::int64_t examples() const { return examples_; }  // 0 before scoring
  std::int64_t pool_size() const { return pool_; }     // examples the task draws from (N when unrestricted)
  const torch::Tensor& order() const { return order_; }  // example indices, easiest first (undefined before scoring)

  // curriculum.pt in a checkpoint: "order" (int64, empty before scoring) and "pool".
  void save(StateWriter& state) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  void score(Task& task);

  CurriculumSettings settings_;
  torch::Tensor order_;         // CPU int64 [N]
  std::int64_t examples_ = 0;
  std::int64_t pool_ = 0;
};

}  // namespace hpt::host
