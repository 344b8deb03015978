// [averaging] and [lookahead]: the host's weight averaging and Lookahead, for every run
// whatever its optimizer (the engine applies them: engine/weight_average.hpp and
// engine/lookahead.hpp). An absent section turns the feature off.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

// An exponential moving average of the weights, kept beside them.
struct AveragingSettings {
  bool enabled = false;              // the manifest has an [averaging] section
  double decay = 0.99;               // avg = decay * avg + (1 - decay) * w after every kept real step
  std::int64_t start_step = 0;       // the average starts as a copy of the weights at this step
  std::string evaluate = "both";     // both, average (only the averaged weights), raw (only the raw)

  bool evaluates_raw() const { return !enabled || evaluate != "average"; }
  bool evaluates_average() const { return enabled && evaluate != "raw"; }

  static std::vector<OptionSpec> option_specs();
  static AveragingSettings from(const Options& options, bool enabled);
};

// Lookahead (Zhang et al. 2019) around the optimizer: slow weights phi; every k real steps
// phi += alpha * (theta - phi), then theta = phi.
struct LookaheadSettings {
  bool enabled = false;  // the manifest has a [lookahead] section
  std::int64_t k = 5;
  double alpha = 0.5;

  static std::vector<OptionSpec> option_specs();
  static LookaheadSettings from(const Options& options, bool enabled);
};

// The prefix of a metric measured on the averaged weights: "avg.val_accuracy".
constexpr const char* kAveragedMetricPrefix = "avg.";

}  // namespace hpt::host
