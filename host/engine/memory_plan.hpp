// MemoryPlan: the device memory a run will hold before any activation (parameters,
// gradients, optimizer state, the engine's snapshots, the dynamics model), computed
// before the first step so that a run that cannot fit fails at once, naming what
// does not fit, instead of running out of memory hours later.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "hpt/backend.hpp"

namespace hpt::host {

struct MemoryPlan {
  std::vector<std::pair<std::string, std::int64_t>> items;  // (what, bytes), in the order added

  void add(std::string what, std::int64_t bytes) { items.emplace_back(std::move(what), bytes); }
  std::int64_t total() const;
  // "1.20 GiB: parameters 0.30 GiB, gradients 0.30 GiB, ..." (largest first).
  std::string text() const;

  // Throws hpt::BadInput when the plan exceeds `budget_gib` (when > 0) or the device's
  // capacity (when the backend knows it). `where` names the setting, e.g.
  // "configs/x.toml: [backend] memory_budget".
  void check(double budget_gib, const MemoryUse& device, const std::string& device_name,
             const std::string& where) const;
};

std::string gib_text(std::int64_t bytes);  // "0.30 GiB"

}  // namespace hpt::host
