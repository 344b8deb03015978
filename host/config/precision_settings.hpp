// The keys every [backend] section accepts whatever its plugin: the precision of the
// forward pass, fp16 loss scaling, and the device-memory budget. The host owns them
// (the engine applies them), so every backend gets mixed precision the same way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

enum class Precision { Fp32, Bf16, Fp16 };
const char* to_string(Precision precision);

struct PrecisionSettings {
  Precision precision = Precision::Fp32;
  // fp16 dynamic loss scaling (torch.cuda.amp.GradScaler's algorithm and defaults).
  double loss_scale = 65536.0;         // the first scale
  double scale_growth = 2.0;           // factor after growth_interval clean steps in a row
  double scale_backoff = 0.5;          // factor after a step with inf/NaN gradients
  std::int64_t growth_interval = 2000;
  double memory_budget_gib = 0.0;      // 0: no budget

  // The keys, for validation and `hpt validate`; a backend plugin that declares a key of
  // the same name keeps its own.
  static std::vector<OptionSpec> option_specs();
  static PrecisionSettings from(const Options& backend_options);
};

}  // namespace hpt::host
