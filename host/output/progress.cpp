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

Progress::Progress(int tty, std::shared_ptr<spdlog::logger> logger)
    : tty_(tty == 1 || (tty == -1 && ::isatty(2))), logger_(std::move(logger)) {}

void Progress::update(const TrainingState& s, bool final) {
  double since = std::chrono::duration<double>(Clock::now() - last_).count();
  if (!final && since < (tty_ ? 0.25 : 10.0)) return;
  last_ = Clock::now();
  double elapsed = std::chrono::duration<double>(last_ - started_).count();
  double rate = elapsed > 0 ? static_cast<double>(s.step) / elapsed : 0.0;
  double eta = rate > 0 ? static_cast<double>(s.max_steps - s.step) / rate : 0.0;
  char line[256];
  std::snprintf(line, sizeof line, "step %lld/%lld  %.1f steps/s  loss %.4f%s%s  ETA %.0fs",
                static_cast<long long>(s.step), static_cast<long long>(s.max_steps), rate, s.last_loss,
                last_eval_.empty() ? "" : "  ", last_eval_.c_str(), eta);
  if (tty_) {
    int width = 24;
    int filled = s.max_steps > 0 ? static_cast<int>(width * s.step / s.max_steps) : 0;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(static_cast<std::size_t>(width), '.');
    std::fprintf(stderr, "\r[%s] %s\x1b[K%s", bar.c_str(), line, final ? "\n" : "");
    std::fflush(stderr);
  } else {
    logger_->info("{}", line);
  }
}

}  // namespace hpt::host
