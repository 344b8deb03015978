#include "bench/run_progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

#include <boost/json.hpp>

#include "bench/json_fields.hpp"

namespace hpt::host {

namespace {

// Fields of an eval line that are not metrics (output/metrics_log.cpp).
bool is_metric_field(const std::string& key) {
  return key != "type" && key != "step" && key != "train_seconds" && key != "eval_seconds" &&
         key != "backward_passes" && key.rfind("memory_", 0) != 0;
}

// How many of the last evaluations the target's trend is fitted through.
constexpr std::size_t kTrendEvals = 4;

}  // namespace

std::string duration_text(double seconds) {
  std::ostringstream os;
  long s = static_cast<long>(seconds + 0.5);
  if (seconds < 60) os << std::fixed << std::setprecision(1) << seconds << "s";
  else if (s < 3600) os << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else os << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  return os.str();
}

RunProgress::RunProgress(std::string metrics_path, std::int64_t max_steps, std::optional<MetricGoal> target)
    : path_(std::move(metrics_path)), max_steps_(max_steps), target_(std::move(target)) {}

bool RunProgress::poll() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::uint64_t>(std::max<std::streamoff>(0, in.tellg()));
  if (size < offset_) {  // a new file under the same name: start over
    offset_ = 0;
    partial_.clear();
  }
  if (size == offset_) return false;
  in.seekg(static_cast<std::streamoff>(offset_));
  std::string chunk(size - offset_, '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<std::size_t>(in.gcount()));
  offset_ += chunk.size();
  partial_ += chunk;
  std::int64_t step_before = step_;
  std::size_t evals_before = evals_.size();
  std::size_t start = 0;
  for (std::size_t nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n', start)) {
    read_line(partial_.substr(start, nl - start));
    start = nl + 1;
  }
  partial_.erase(0, start);
  if (step_ > 0 && !first_seen_) {
    first_seen_ = Clock::now();
    first_step_ = step_;
  }
  if (first_seen_ && step_ != latest_step_) {
    latest_seen_ = Clock::now();
    latest_step_ = step_;
  }
  return step_ != step_before || evals_.size() != evals_before;
}

void RunProgress::read_line(const std::string& text) {
  std::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return;
  const auto& o = v.as_object();
  std::string type = json_text(o, "type");
  if (type == "step") {
    std::string kind = json_text(o, "kind");
    if (kind == "probe") return;
    step_ = static_cast<std::int64_t>(json_number(o, "step", static_cast<double>(step_)));
    train_seconds_ = json_number(o, "train_seconds", train_seconds_);
    if (kind == "full" || kind == "correct") {
      const auto* loss = o.if_contains("loss");
      if (loss && loss->is_number()) loss_ = loss->to_number<double>();
      else if (loss && loss->is_null()) loss_ = std::nan("");  // diverged
    }
  } else if (type == "eval") {
    if (eval_metric_.empty()) {
      if (target_ && o.contains(target_->metric)) eval_metric_ = target_->metric;
      else if (o.contains("val_loss")) eval_metric_ = "val_loss";
      else
        for (const auto& [k, value] : o)
          if (is_metric_field(std::string(k))) {
            eval_metric_ = std::string(k);
            break;
          }
    }
    Eval e{static_cast<std::int64_t>(json_number(o, "step", 0.0)), std::nullopt};
    if (!eval_metric_.empty())
      if (const auto* m = o.if_contains(eval_metric_); m && m->is_number()) e.value = m->to_number<double>();
    evals_.push_back(e);
    step_ = std::max(step_, e.step);
    train_seconds_ = json_number(o, "train_seconds", train_seconds_);
  } else if (type == "rollback") {
    step_ = static_cast<std::int64_t>(json_number(o, "step", static_cast<double>(step_)));
  }
}

std::optional<double> RunProgress::projected_target_step() const {
  if (!target_ || eval_metric_ != target_->metric) return std::nullopt;
  std::vector<std::pair<double, double>> points;  // (step, value), the last few evaluations
  for (auto it = evals_.rbegin(); it != evals_.rend() && points.size() < kTrendEvals; ++it)
    if (it->value && std::isfinite(*it->value)) points.emplace_back(static_cast<double>(it->step), *it->value);
  if (points.empty()) return std::nullopt;
  const double goal = target_->value, last = points.front().second, last_step = points.front().first;
  const double min_steps = static_cast<double>(target_->min_steps);
  const bool reached = target_->maximize ? last >= goal : last <= goal;
  if (reached) return std::max(last_step, min_steps);
  if (points.size() < 2) return std::nullopt;
  // Least squares: value = a + b * step.
  double n = static_cast<double>(points.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : points) sx += x, sy += y, sxx += x * x, sxy += x * y;
  double denom = n * sxx - sx * sx;
  if (denom <= 0) return std::nullopt;
  double slope = (n * sxy - sx * sy) / denom;
  if (slope == 0 || (goal - last) / slope <= 0) return std::nullopt;  // heading away
  return std::max(last_step + (goal - last) / slope, min_steps);
}

std::string RunProgress::line(bool with_eta) const {
  std::ostringstream os;
  os << "step " << step_ << "/" << max_steps_;
  if (train_seconds_ > 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f", static_cast<double>(step_) / train_seconds_);
    os << "  " << rate << " steps/s";
  }
  if (loss_) {
    char loss[32];
    std::snprintf(loss, sizeof loss, "%.4f", *loss_);
    os << "  loss " << loss;
  }
  if (!evals_.empty() && !eval_metric_.empty()) {
    os << "  " << eval_metric_ << " ";
    if (evals_.back().value) {
      char value[32];
      std::snprintf(value, sizeof value, "%.4g", *evals_.back().value);
      os << value;
    } else {
      os << "?";
    }
    os << " @" << evals_.back().step;
  }
  if (!with_eta || !first_seen_) return os.str();
  double end = static_cast<double>(max_steps_);
  std::string to = "to budget";
  if (auto t = projected_target_step(); t && target_->stop && *t < end) {
    end = *t;
    to = "to target (~step " + std::to_string(static_cast<std::int64_t>(std::llround(end))) + ")";
  }
  double wall = std::chrono::duration<double>(latest_seen_ - *first_seen_).count();
  auto done = static_cast<double>(latest_step_ - first_step_);
  if (done <= 0 || wall <= 0) return os.str();  // one sighting: no pace yet
  double since = std::chrono::duration<double>(Clock::now() - latest_seen_).count();
  double eta = std::max(0.0, std::max(0.0, end - static_cast<double>(step_)) * wall / done - since);
  os << "  ETA " << duration_text(eta) << " " << to;
  return os.str();
}

}  // namespace hpt::host
