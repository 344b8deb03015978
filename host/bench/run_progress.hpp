// The live progress of a run that `hpt bench` started: follows the run's metrics.jsonl
// while the run appends to it, and says where the run is in one line:
//
//   step 1200/20000  310.2 steps/s  loss 0.4123  val_accuracy 0.8712 @1000  ETA 1m02s to target (~step 2400)
//
// steps/s is the run's own rate (step-equivalents per second of training, from its step
// lines); the ETA is to the budget, or to the step where the target metric's trend over
// the last evaluations meets the target when that comes first (and the target stops the
// run), at the wall-clock pace (evaluation included) between the first and the latest
// step seen, less the time since the latest. The line is as fresh as the file: the run
// flushes metrics.jsonl at every evaluation and checkpoint, and when its buffer fills.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/manifest.hpp"

namespace hpt::host {

// "8.1s", "3m05s", "2h10m".
std::string duration_text(double seconds);

class RunProgress {
 public:
  RunProgress(std::string metrics_path, std::int64_t max_steps, std::optional<MetricGoal> target);

  // Reads what the run appended since the last call (a line still being written waits for
  // the next call). Returns whether a step or eval line was read.
  bool poll();
  // Whether a step line has been read.
  bool started() const { return step_ > 0; }
  std::int64_t step() const { return step_; }
  std::size_t evals() const { return evals_.size(); }

  // The progress line; `with_eta`: add the ETA (not for a run that has ended).
  std::string line(bool with_eta) const;

  // The step where the target metric's trend (a least-squares line through the last
  // evaluations) meets the target, if it heads there; the target's min_steps respected.
  // Public for the tests.
  std::optional<double> projected_target_step() const;

 private:
  using Clock = std::chrono::steady_clock;
  void read_line(const std::string& text);

  std::string path_;
  std::int64_t max_steps_;
  std::optional<MetricGoal> target_;
  std::uint64_t offset_ = 0;   // bytes of the file consumed
  std::string partial_;        // the start of a line not yet complete
  std::int64_t step_ = 0;
  double train_seconds_ = 0.0;
  std::optional<double> loss_;  // of the last real (full or correct) step
  struct Eval {
    std::int64_t step;
    std::optional<double> value;  // of the target metric (or the first metric)
  };
  std::vector<Eval> evals_;
  std::string eval_metric_;
  // Wall clock: when the first step and the latest new step were seen, and which steps.
  std::optional<Clock::time_point> first_seen_;
  std::int64_t first_step_ = 0;
  Clock::time_point latest_seen_;
  std::int64_t latest_step_ = 0;
};

}  // namespace hpt::host
