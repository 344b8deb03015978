// Whether a lower or a higher value of a metric is better: the one rule that run.target,
// run.early_stop, the plateau schedule and the checkpointer's `best` all follow.
#pragma once

#include <string>

namespace hpt {

// "auto" (by the metric's name): lower is better for names that contain "loss",
// "error", "perplexity", "ppl" or "bpc" (bits per character); higher otherwise
// (accuracy, F1, ...). "min": lower is better; "max": higher is better.
// Throws hpt::BadInput naming `mode` for anything else.
bool lower_is_better(const std::string& metric, const std::string& mode = "auto");

}  // namespace hpt
