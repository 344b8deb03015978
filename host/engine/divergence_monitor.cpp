#include "engine/divergence_monitor.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace hpt::host {

const char* to_string(Alarm alarm) {
  switch (alarm) {
    case Alarm::Critical: return "critical";
    case Alarm::Warning: return "warning";
    case Alarm::Notice: return "notice";
    default: return "none";
  }
}

namespace {
std::string text(const char* what, double value, const char* than, double limit) {
  std::ostringstream os;
  os << what << " " << value << " " << than << " " << limit;
  return os.str();
}
}  // namespace

Diagnosis DivergenceMonitor::observe(double loss, double grad_norm) {
  ++since_snapshot_;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm))
    return {Alarm::Critical, std::isfinite(loss) ? "gradient norm is not finite" : "loss is not finite"};

  Diagnosis d;
  const bool trusted = steps_ >= s_.warmup;
  if (trusted) {
    double sd = std::sqrt(std::max(loss_var_, 1e-12));
    if (grad_mean_ > 0 && grad_norm > s_.grad_explode * grad_mean_)
      d = {Alarm::Critical, text("gradient norm", grad_norm, "exceeds", s_.grad_explode * grad_mean_)};
    else if (loss > loss_mean_ + s_.loss_sigma * sd)
      d = {Alarm::Warning, text("loss", loss, "exceeds its average + sigma bound", loss_mean_ + s_.loss_sigma * sd)};
    else if (grad_mean_ > 0 && grad_norm < s_.grad_vanish * grad_mean_)
      d = {Alarm::Notice, text("gradient norm", grad_norm, "fell below", s_.grad_vanish * grad_mean_)};
  }
  if (d.alarm == Alarm::Critical) return d;  // keep the statistics of the healthy trajectory

  // Oscillation: the loss change flips sign at (almost) every step of the window and the
  // swings grow (mini-batch noise flips signs too, but does not grow).
  recent_losses_.push_back(loss);
  if (static_cast<std::int64_t>(recent_losses_.size()) > s_.oscillation_window) recent_losses_.pop_front();
  if (d.alarm == Alarm::None && trusted && static_cast<std::int64_t>(recent_losses_.size()) == s_.oscillation_window) {
    int flips = 0;
    for (std::size_t i = 2; i < recent_losses_.size(); ++i)
      flips += ((recent_losses_[i] - recent_losses_[i - 1]) * (recent_losses_[i - 1] - recent_losses_[i - 2]) < 0);
    const std::size_t half = recent_losses_.size() / 2;
    double early = 0, late = 0;
    for (std::size_t i = 1; i < recent_losses_.size(); ++i)
      (i <= half ? early : late) += std::abs(recent_losses_[i] - recent_losses_[i - 1]);
    if (flips >= static_cast<int>(recent_losses_.size()) - 4 && late > 2.0 * early)
      d = {Alarm::Warning, "loss oscillates with growing swings"};
  }

  // Exponential moving statistics (about the last 50 steps).
  const double a = steps_ == 0 ? 1.0 : 0.02;
  double delta = loss - loss_mean_;
  loss_mean_ += a * delta;
  loss_var_ = steps_ == 0 ? 0.0 : (1 - a) * (loss_var_ + a * delta * delta);
  grad_mean_ = steps_ == 0 ? grad_norm : (1 - a) * grad_mean_ + a * grad_norm;
  ++steps_;

  if (d.alarm == Alarm::Warning) {
    forced_real_ = std::max(forced_real_, s_.force_real);
    horizon_factor_ = std::max(horizon_factor_ * 0.5, 1.0 / 64);
    quiet_steps_ = 0;
  } else if (++quiet_steps_ > s_.force_real) {
    horizon_factor_ = std::min(1.0, horizon_factor_ * 1.05);
  }
  return d;
}

Diagnosis DivergenceMonitor::phase_rolled_back() {
  forced_real_ = std::max(forced_real_, s_.force_real);
  quiet_steps_ = 0;
  return {Alarm::Warning, "a predicted phase was rolled back"};
}

std::int64_t DivergenceMonitor::horizon_cap(std::int64_t unlimited) const {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(static_cast<double>(unlimited) * horizon_factor_));
}

bool DivergenceMonitor::snapshot_due() const {
  return since_snapshot_ >= s_.snapshot_every && quiet_steps_ > 0 && forced_real_ == 0;
}

void DivergenceMonitor::reset_statistics() {
  steps_ = 0;
  loss_mean_ = loss_var_ = grad_mean_ = 0.0;
  recent_losses_.clear();
  quiet_steps_ = 0;
  forced_real_ = std::max(forced_real_, s_.force_real);
}

void DivergenceMonitor::save(hpt::StateWriter& state) const {
  state.write("monitor/counts", torch::tensor({steps_, forced_real_, since_snapshot_, quiet_steps_}, torch::kInt64));
  state.write("monitor/statistics", torch::tensor({loss_mean_, loss_var_, grad_mean_, horizon_factor_}, torch::kFloat64));
  std::vector<double> recent(recent_losses_.begin(), recent_losses_.end());
  state.write("monitor/recent_losses", torch::tensor(recent, torch::kFloat64));
}

void DivergenceMonitor::load(torch::serialize::InputArchive& a) {
  torch::Tensor counts, statistics, recent;
  if (!a.try_read("monitor/counts", counts)) return;
  a.read("monitor/statistics", statistics);
  a.read("monitor/recent_losses", recent);
  auto c = counts.accessor<std::int64_t, 1>();
  steps_ = c[0];
  forced_real_ = c[1];
  since_snapshot_ = c[2];
  quiet_steps_ = c[3];
  auto s = statistics.accessor<double, 1>();
  loss_mean_ = s[0];
  loss_var_ = s[1];
  grad_mean_ = s[2];
  horizon_factor_ = s[3];
  recent_losses_.clear();
  auto r = recent.accessor<double, 1>();
  for (std::int64_t i = 0; i < recent.size(0); ++i) recent_losses_.push_back(r[i]);
}

}  // namespace hpt::host
