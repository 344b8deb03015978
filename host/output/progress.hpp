// The progress line of a run: a bar redrawn in place on a terminal, a plain log line
// every few seconds otherwise.
//
//   step 1200/2000  412.3 steps/s  loss 0.3120  val_loss 0.35  real 700 · predicted 500 (42%) · rolled back 3  ETA to budget 4s
//
// steps/s is the run's step-equivalents over its training time (summary.json's steps /
// train_seconds, a resumed run's earlier steps and time included; evaluation and
// checkpoints excluded). The ETA is the wall time this process has taken per step so far
// (evaluation and checkpoints included) times the steps left to run.max_steps; "ETA to
// budget" when run.target may stop the run sooner. A hybrid run adds its real and
// predicted steps and the predicted phases rolled back (undone: their steps not counted).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "hpt/types.hpp"

namespace hpt::host {

// "val_accuracy 0.87 val_loss 0.35": metrics as the progress line and the log show them.
std::string metrics_text(const Metrics& metrics);

// What the line shows beyond step, rate and loss.
struct ProgressLayout {
  bool hybrid = false;  // real / predicted steps and roll-backs ([dynamics] other than "none")
  bool target = false;  // run.target is set: the ETA is to the budget, and says so
};

class Progress {
 public:
  // tty: 1 draw a bar on stderr, 0 log plain lines, -1 a bar when stderr is a terminal.
  Progress(int tty, std::shared_ptr<spdlog::logger> logger, ProgressLayout layout = {});

  // The state this process starts from (step 0, or the checkpoint a resume restored):
  // the ETA counts the steps from here over the wall time since this call.
  void start_from(const TrainingState& state);
  // The last evaluation, shown on every line from now on ("val_accuracy 0.87").
  void set_last_eval(std::string text) { last_eval_ = std::move(text); }
  // Draws the line if it is time to (always when `final`). In a log, the line of the
  // last step is written once: by the final call.
  void update(const TrainingState& state, bool final);

  // The line for `state`, `wall_seconds` after start_from (without the bar).
  std::string line(const TrainingState& state, double wall_seconds) const;

 private:
  using Clock = std::chrono::steady_clock;
  bool tty_ = false;
  std::shared_ptr<spdlog::logger> logger_;
  ProgressLayout layout_;
  Clock::time_point started_ = Clock::now();
  std::int64_t start_step_ = 0;
  Clock::time_point last_ = Clock::now() - std::chrono::hours(1);
  std::string last_eval_;
  std::int64_t printed_step_ = -1;  // the step of the last line written to the log
  std::string printed_eval_;        // and the evaluation it showed
};

}  // namespace hpt::host
