#include "engine/stability_lr.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/fmt/fmt.h>

namespace hpt::host {

StabilityLr::Change StabilityLr::observe(double loss, double grad_norm) {
  if (!s_.enabled) return {};
  std::string unstable;
  const bool recovering = since_cut_ >= 0 && since_cut_ < s_.recovery;
  if (since_cut_ >= 0) ++since_cut_;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    unstable = std::isfinite(loss) ? "gradient norm is not finite" : "loss is not finite";
  } else if (recovering) {
    if (loss > cut_loss_)
      unstable = fmt::format("loss {:g} still rising {} steps after a cut at loss {:g}", loss, since_cut_, cut_loss_);
  } else if (steps_ > 0 && loss > s_.loss_jump * loss_mean_ && loss_mean_ > 0.0) {
    unstable = fmt::format("loss {:g} exceeds {:g} x its EMA {:g}", loss, s_.loss_jump, loss_mean_);
  } else if (steps_ >= s_.warmup) {
    const double bound = grad_mean_ + s_.grad_sigma * std::sqrt(std::max(grad_var_, 0.0));
    if (grad_norm > bound)
      unstable = fmt::format("gradient norm {:g} exceeds its EMA + {:g} std. devs ({:g})", grad_norm, s_.grad_sigma,
                             bound);
  }
  if (!unstable.empty()) {
    stable_streak_ = 0;
    const double factor = std::max(s_.cut, s_.min_scale / scale_);
    if (!(factor < 1.0)) return {};  // at min_scale already
    scale_ *= factor;
    since_cut_ = 0;
    cut_loss_ = loss;
    ++cuts_;
    return {factor, true, unstable};
  }
  // Exponential moving statistics of the stable steps (the first one starts them).
  const double a = steps_ == 0 ? 1.0 : 1.0 - s_.ema_decay;
  loss_mean_ += a * (loss - loss_mean_);
  const double delta = grad_norm - grad_mean_;
  grad_mean_ += a * delta;
  grad_var_ = steps_ == 0 ? 0.0 : (1.0 - a) * (grad_var_ + a * delta * delta);
  ++steps_;
  if (++stable_streak_ < s_.grow_every) return {};
  stable_streak_ = 0;
  const double factor = std::min(s_.grow, s_.max_scale / scale_);
  if (!(factor > 1.0)) return {};  // at max_scale already
  scale_ *= factor;
  return {factor, false, fmt::format("{} stable steps in a row", s_.grow_every)};
}

void StabilityLr::rolled_back() {
  steps_ = 0;
  stable_streak_ = 0;
  since_cut_ = -1;
  loss_mean_ = grad_mean_ = grad_var_ = 0.0;
}

void StabilityLr::save(hpt::StateWriter& state) const {
  state.write("stability/counts", torch::tensor({steps_, stable_streak_, cuts_, since_cut_}, torch::kInt64));
  state.write("stability/statistics",
              torch::tensor({scale_, loss_mean_, grad_mean_, grad_var_, cut_loss_}, torch::kFloat64));
}

void StabilityLr::load(torch::serialize::InputArchive& a) {
  torch::Tensor counts, statistics;
  if (!a.try_read("stability/counts", counts) || !a.try_read("stability/statistics", statistics)) return;
  auto c = counts.accessor<std::int64_t, 1>();
  steps_ = c[0];
  stable_streak_ = c[1];
  cuts_ = c[2];
  since_cut_ = c[3];
  auto s = statistics.accessor<double, 1>();
  scale_ = s[0];
  loss_mean_ = s[1];
  grad_mean_ = s[2];
  grad_var_ = s[3];
  cut_loss_ = s[4];
}

}  // namespace hpt::host
