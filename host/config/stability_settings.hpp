// [stability]: the stability-driven learning rate (engine/stability_lr.hpp). It watches
// the loss and the gradient norm of every real step, raises the learning rate gently
// while training is stable and cuts it on instability. An absent section turns it off.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

struct StabilitySettings {
  bool enabled = false;           // the manifest has a [stability] section
  double grow = 1.05;             // lr factor after `grow_every` stable real steps in a row
  std::int64_t grow_every = 25;
  double max_scale = 2.0;         // its factors together never exceed this (x the configured lr)
  double cut = 0.5;               // lr factor on an unstable step
  double min_scale = 1e-3;        // ... and never go below this
  double grad_sigma = 4.0;        // unstable: grad norm > its EMA + grad_sigma std. devs (after warmup)
  double loss_jump = 2.0;         // unstable: loss > loss_jump x its EMA
  double ema_decay = 0.95;        // of the loss and gradient-norm statistics (about the last 20 steps)
  std::int64_t warmup = 10;       // real steps before the gradient-norm test is trusted
  // Real steps after a cut during which a step is unstable only when its loss exceeds the
  // loss that caused the cut (still rising); they enter the statistics, which so follow
  // the loss to the level it settles at instead of cutting again at every step.
  std::int64_t recovery = 5;

  static std::vector<OptionSpec> option_specs();
  static StabilitySettings from(const Options& options, bool enabled);
  // What the key ranges cannot say (cut and ema_decay strictly inside (0, 1), min_scale > 0):
  // (key, message) pairs for the manifest's errors; none when the section is fine.
  static std::vector<std::pair<std::string, std::string>> problems(const Options& options);
};

}  // namespace hpt::host
