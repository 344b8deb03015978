// run.divergence: the divergence monitor's settings, as the manifest declares and
// validates them (the monitor itself is in engine/divergence_monitor.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

struct DivergenceSettings {
  double loss_sigma = 6.0;
  double grad_explode = 50.0;
  double grad_vanish = 1e-4;
  std::int64_t warmup = 50;          // real steps before the statistics are trusted
  std::int64_t force_real = 20;      // real steps forced after a warning
  std::int64_t snapshot_every = 100; // real steps between last-good snapshots
  std::int64_t max_rollbacks = 3;
  double lr_cut = 0.5;               // learning-rate factor after a critical roll-back
  std::int64_t oscillation_window = 20;

  static std::vector<OptionSpec> option_specs();
  static DivergenceSettings from(const Options& options);
};

}  // namespace hpt::host
