#include "config/stability_settings.hpp"

namespace hpt::host {

std::vector<OptionSpec> StabilitySettings::option_specs() {
  StabilitySettings s;
  return {
      option_float("grow", s.grow, "lr factor (>= 1) after grow_every stable real steps in a row", 1.0, 10.0),
      option_int("grow_every", s.grow_every, "stable real steps in a row before the lr grows by `grow`", 1),
      option_float("max_scale", s.max_scale,
                   "the most the stability factors may raise the lr, as a multiple of the configured lr (>= 1)", 1.0,
                   1e6),
      option_float("cut", s.cut, "lr factor on an unstable step, 0 < cut < 1", 0.0, 1.0),
      option_float("min_scale", s.min_scale, "the least the stability factors may leave of the configured lr", 0.0,
                   1.0),
      option_float("grad_sigma", s.grad_sigma,
                   "a step is unstable when its gradient norm exceeds the norm's EMA + grad_sigma std. devs", 0.0),
      option_float("loss_jump", s.loss_jump, "a step is unstable when its loss exceeds loss_jump x the loss EMA (> 1)",
                   1.0),
      option_float("ema_decay", s.ema_decay, "decay of the loss and gradient-norm EMAs, 0 < ema_decay < 1", 0.0, 1.0),
      option_int("warmup", s.warmup, "real steps before the gradient-norm test is trusted", 1),
      option_int("recovery", s.recovery,
                 "real steps after a cut during which only a loss above the one that caused it (still rising) "
                 "cuts again; they enter the statistics",
                 0),
  };
}

StabilitySettings StabilitySettings::from(const Options& o, bool enabled) {
  StabilitySettings s;
  s.enabled = enabled;
  s.grow = o.get_float("grow");
  s.grow_every = o.get_int("grow_every");
  s.max_scale = o.get_float("max_scale");
  s.cut = o.get_float("cut");
  s.min_scale = o.get_float("min_scale");
  s.grad_sigma = o.get_float("grad_sigma");
  s.loss_jump = o.get_float("loss_jump");
  s.ema_decay = o.get_float("ema_decay");
  s.warmup = o.get_int("warmup");
  s.recovery = o.get_int("recovery");
  return s;
}

std::vector<std::pair<std::string, std::string>> StabilitySettings::problems(const Options& o) {
  std::vector<std::pair<std::string, std::string>> out;
  auto open_unit = [&](const char* key, const char* example) {
    const double v = o.get_float(key);
    if (v <= 0.0 || v >= 1.0)
      out.emplace_back(key, std::string("'stability.") + key + "' must be a float strictly between 0 and 1 (e.g. " +
                                example + ")");
  };
  open_unit("cut", "0.5");
  open_unit("ema_decay", "0.95");
  if (o.get_float("min_scale") <= 0.0)
    out.emplace_back("min_scale", "'stability.min_scale' must be a float in (0, 1] (e.g. 0.001)");
  return out;
}

}  // namespace hpt::host
