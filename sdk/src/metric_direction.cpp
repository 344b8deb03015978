#include "hpt/metric_direction.hpp"

#include "hpt/error.hpp"

namespace hpt {

bool lower_is_better(const std::string& metric, const std::string& mode) {
  if (mode == "min") return true;
  if (mode == "max") return false;
  if (mode != "auto") throw BadInput("a metric's mode must be \"auto\", \"max\" or \"min\", got \"" + mode + "\"");
  for (const char* lower : {"loss", "error", "perplexity", "ppl", "bpc"})
    if (metric.find(lower) != std::string::npos) return true;
  return false;
}

}  // namespace hpt
