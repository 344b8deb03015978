#include "config/precision_settings.hpp"

namespace hpt::host {

const char* to_string(Precision precision) {
  switch (precision) {
    case Precision::Fp32: return "fp32";
    case Precision::Bf16: return "bf16";
    case Precision::Fp16: return "fp16";
  }
  return "?";
}

std::vector<OptionSpec> PrecisionSettings::option_specs() {
  PrecisionSettings d;
  return {
      option_string("precision", "fp32",
                    "forward pass and loss under autocast: fp32 (off), bf16, or fp16 with dynamic loss scaling; "
                    "parameters, optimizer state and the updates the dynamics model sees stay fp32",
                    {"fp32", "bf16", "fp16"}),
      option_float("loss_scale", d.loss_scale, "fp16: the first loss scale", 1.0),
      option_float("scale_growth", d.scale_growth, "fp16: scale factor after growth_interval clean steps", 1.0),
      option_float("scale_backoff", d.scale_backoff, "fp16: scale factor after a step with inf/NaN gradients", 0.0, 1.0),
      option_int("growth_interval", d.growth_interval, "fp16: clean steps in a row before the scale grows", 1),
      option_float("memory_budget", d.memory_budget_gib,
                   "GiB of device memory the run may plan to hold (parameters, gradients, optimizer state, "
                   "snapshots, dynamics model), checked before the first step; 0: no budget",
                   0.0, 1e9),
  };
}

PrecisionSettings PrecisionSettings::from(const Options& o) {
  PrecisionSettings s;
  if (o.has("precision")) {
    const std::string p = o.get_string("precision");
    s.precision = p == "bf16" ? Precision::Bf16 : p == "fp16" ? Precision::Fp16 : Precision::Fp32;
  }
  if (o.has("loss_scale")) s.loss_scale = o.get_float("loss_scale");
  if (o.has("scale_growth")) s.scale_growth = o.get_float("scale_growth");
  if (o.has("scale_backoff")) s.scale_backoff = o.get_float("scale_backoff");
  if (o.has("growth_interval")) s.growth_interval = o.get_int("growth_interval");
  if (o.has("memory_budget")) s.memory_budget_gib = o.get_float("memory_budget");
  return s;
}

}  // namespace hpt::host
