// The progress line of a run: a bar redrawn in place on a terminal, a plain log line
// every few seconds otherwise.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "hpt/types.hpp"

namespace hpt::host {

// "val_accuracy 0.87 val_loss 0.35": metrics as the progress line and the log show them.
std::string metrics_text(const Metrics& metrics);

class Progress {
 public:
  // tty: 1 draw a bar on stderr, 0 log plain lines, -1 a bar when stderr is a terminal.
  Progress(int tty, std::shared_ptr<spdlog::logger> logger);

  // The last evaluation, shown on every line from now on ("val_accuracy 0.87").
  void set_last_eval(std::string text) { last_eval_ = std::move(text); }
  // Draws the line if it is time to (always when `final`).
  void update(const TrainingState& state, bool final);

 private:
  using Clock = std::chrono::steady_clock;
  bool tty_ = false;
  std::shared_ptr<spdlog::logger> logger_;
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_ = Clock::now() - std::chrono::hours(1);
  std::string last_eval_;
};

}  // namespace hpt::host
