#include "config/averaging_settings.hpp"

namespace hpt::host {

std::vector<OptionSpec> AveragingSettings::option_specs() {
  AveragingSettings a;
  return {
      option_float("decay", a.decay,
                   "EMA decay, 0 < decay < 1: avg = decay * avg + (1 - decay) * weights after every kept real step",
                   0.0, 1.0),
      option_int("start_step", a.start_step,
                 "the average starts as a copy of the weights at this step (0: the initial weights)", 0),
      option_string("evaluate", a.evaluate,
                    "both: raw and averaged metrics (avg.<metric>); average: only the averaged weights' metrics; "
                    "raw: keep the average (checkpoints, final_averaged_weights.pt) without evaluating it",
                    {"both", "average", "raw"}),
  };
}

AveragingSettings AveragingSettings::from(const Options& o, bool enabled) {
  AveragingSettings a;
  a.enabled = enabled;
  a.decay = o.get_float("decay");
  a.start_step = o.get_int("start_step");
  a.evaluate = o.get_string("evaluate");
  return a;
}

std::vector<OptionSpec> LookaheadSettings::option_specs() {
  LookaheadSettings l;
  return {
      option_int("k", l.k, "real steps between synchronisations of the slow weights", 1),
      option_float("alpha", l.alpha, "slow-weight step size, 0 < alpha <= 1: slow += alpha * (weights - slow)", 0.0,
                   1.0),
  };
}

LookaheadSettings LookaheadSettings::from(const Options& o, bool enabled) {
  LookaheadSettings l;
  l.enabled = enabled;
  l.k = o.get_int("k");
  l.alpha = o.get_float("alpha");
  return l;
}

}  // namespace hpt::host
