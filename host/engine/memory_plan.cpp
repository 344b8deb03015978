#include "engine/memory_plan.hpp"

#include <algorithm>
#include <cstdio>

#include "hpt/error.hpp"

namespace hpt::host {

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
}

std::string gib_text(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / kGiB);
  return buf;
}

std::int64_t MemoryPlan::total() const {
  std::int64_t sum = 0;
  for (const auto& item : items) sum += item.second;
  return sum;
}

std::string MemoryPlan::text() const {
  auto sorted = items;
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string s = gib_text(total()) + " (";
  bool first = true;
  for (const auto& [what, bytes] : sorted) {
    if (bytes <= 0) continue;
    s += (first ? "" : ", ") + what + " " + gib_text(bytes);
    first = false;
  }
  return s + ")";
}

void MemoryPlan::check(double budget_gib, const MemoryUse& device, const std::string& device_name,
                       const std::string& where) const {
  const std::int64_t need = total();
  if (budget_gib > 0.0 && static_cast<double>(need) > budget_gib * kGiB) {
    char budget[32];
    std::snprintf(budget, sizeof budget, "%g GiB", budget_gib);
    throw BadInput(where + " = " + budget + " is too small: before any activation this run holds " + text() +
                   " on " + device_name + "; raise memory_budget, or shrink the model, the optimizer state or the "
                   "dynamics model's history");
  }
  if (device.total > 0 && need > device.total)
    throw BadInput("this run does not fit on " + device_name + " (" + gib_text(device.total) +
                   "): before any activation it holds " + text() +
                   "; shrink the model, the optimizer state or the dynamics model's history");
}

}  // namespace hpt::host
