#include "config/divergence_settings.hpp"

namespace hpt::host {

std::vector<OptionSpec> DivergenceSettings::option_specs() {
  DivergenceSettings d;
  return {
      option_float("loss_sigma", d.loss_sigma, "warning when the loss exceeds its average by this many std. devs", 0.0),
      option_float("grad_explode", d.grad_explode, "critical when the gradient norm exceeds its average this many times", 1.0),
      option_float("grad_vanish", d.grad_vanish, "notice when the gradient norm falls below this fraction of its average", 0.0),
      option_int("warmup", d.warmup, "real steps before the statistics are trusted", 1),
      option_int("force_real", d.force_real, "real steps forced after a warning", 0),
      option_int("snapshot_every", d.snapshot_every, "real steps between last-good snapshots", 1),
      option_int("max_rollbacks", d.max_rollbacks, "critical roll-backs before the run fails", 0),
      option_float("lr_cut", d.lr_cut, "learning-rate factor after a critical roll-back", 0.0, 1.0),
      option_int("oscillation_window", d.oscillation_window, "real steps over which loss oscillation is judged", 4),
  };
}

DivergenceSettings DivergenceSettings::from(const Options& o) {
  DivergenceSettings d;
  d.loss_sigma = o.get_float("loss_sigma");
  d.grad_explode = o.get_float("grad_explode");
  d.grad_vanish = o.get_float("grad_vanish");
  d.warmup = o.get_int("warmup");
  d.force_real = o.get_int("force_real");
  d.snapshot_every = o.get_int("snapshot_every");
  d.max_rollbacks = o.get_int("max_rollbacks");
  d.lr_cut = o.get_float("lr_cut");
  d.oscillation_window = o.get_int("oscillation_window");
  return d;
}

}  // namespace hpt::host
