#include "output/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <sstream>

namespace hpt::host {

std::string metrics_text(const Metrics& metrics) {
  std::ostringstream os;
  for (const auto& [k, v] : metrics) os << (os.tellp() > 0 ? " " : "") << k << " " << v;
  return os.str();
}

Progress::Progress(int tty, std::shared_ptr<spdlog::logger> logger, ProgressLayout layout)
    : tty_(tty == 1 || (tty == -1 && ::isatty(2))), logger_(std::move(logger)), layout_(layout) {}

void Progress::start_from(const TrainingState& state) {
  started_ = Clock::now();
  start_step_ = state.step;
}

std::string Progress::line(const TrainingState& s, double wall_seconds) const {
  // The run's own figures, so a resumed run's rate is its steps over its training time
  // (the process's wall time would count a resumed run's earlier steps as done in seconds).
  const double rate = s.seconds > 0 ? static_cast<double>(s.step) / s.seconds : 0.0;
  char head[128];
  std::snprintf(head, sizeof head, "step %lld/%lld  %.1f steps/s  loss %.4f", static_cast<long long>(s.step),
                static_cast<long long>(s.max_steps), rate, s.last_loss);
  std::string text = head;
  if (!last_eval_.empty()) text += "  " + last_eval_;
  if (layout_.hybrid) {
    const long long percent = s.step > 0 ? (100 * s.predicted_steps + s.step / 2) / s.step : 0;
    char phases[128];
    std::snprintf(phases, sizeof phases, "  real %lld · predicted %lld (%lld%%) · rolled back %lld",
                  static_cast<long long>(s.real_steps), static_cast<long long>(s.predicted_steps), percent,
                  static_cast<long long>(s.rollbacks));
    text += phases;
  }
  // The ETA from this process's own pace (evaluation and checkpoints included); none
  // before it has taken a step.
  const std::int64_t done = s.step - start_step_;
  if (done > 0 && wall_seconds > 0 && s.step < s.max_steps) {
    char eta[64];
    std::snprintf(eta, sizeof eta, "  %s %.0fs", layout_.target ? "ETA to budget" : "ETA",
                  wall_seconds / static_cast<double>(done) * static_cast<double>(s.max_steps - s.step));
    text += eta;
  }
  return text;
}

void Progress::update(const TrainingState& s, bool final) {
  if (!tty_) {
    // The last step's line comes from the final call (with the last evaluation), once.
    if (!final && s.step >= s.max_steps) return;
    if (final && s.step == printed_step_ && last_eval_ == printed_eval_) return;
  }
  double since = std::chrono::duration<double>(Clock::now() - last_).count();
  if (!final && since < (tty_ ? 0.25 : 10.0)) return;
  last_ = Clock::now();
  const std::string text = line(s, std::chrono::duration<double>(last_ - started_).count());
  if (tty_) {
    int width = 24;
    int filled = s.max_steps > 0 ? static_cast<int>(width * s.step / s.max_steps) : 0;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(static_cast<std::size_t>(width), '.');
    std::fprintf(stderr, "\r[%s] %s\x1b[K%s", bar.c_str(), text.c_str(), final ? "\n" : "");
    std::fflush(stderr);
  } else {
    logger_->info("{}", text);
    printed_step_ = s.step;
    printed_eval_ = last_eval_;
  }
}

}  // namespace hpt::host
