// What a run did, as summary.json says it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <boost/json.hpp>

#include "config/manifest.hpp"
#include "hpt/backend.hpp"
#include "hpt/types.hpp"

namespace hpt::host {

struct RunSummary {
  std::string status;         // "completed", "target_reached", "early_stopped", "interrupted", "failed"
  std::string error;          // "failed": what went wrong (the step is `steps`)
  std::string run_dir;
  std::int64_t steps = 0;     // step-equivalents: real + predicted steps kept
  std::int64_t real_steps = 0;
  std::int64_t predicted_steps = 0;  // kept
  std::int64_t predicted_discarded = 0;  // applied, then rolled back
  std::int64_t probes = 0;
  std::int64_t rollbacks = 0;        // predicted phases rolled back
  std::int64_t divergence_rollbacks = 0;  // roll-backs to the last good state after a critical alarm
  std::int64_t forward_passes = 0;   // training forward passes (probes and evaluation apart)
  std::int64_t backward_passes = 0;
  std::int64_t skipped_steps = 0;    // fp16: steps skipped for inf/NaN gradients (counted in real_steps)
  double train_seconds = 0.0;        // every step's wall time, probes included; evaluation excluded
  double eval_seconds = 0.0;
  double checkpoint_seconds = 0.0;       // time the checkpoints took, background work included
  double checkpoint_stall_seconds = 0.0; // of which the training thread waited (all of it in the foreground)
  std::optional<double> seconds_to_target;
  std::optional<std::int64_t> steps_to_target;
  std::optional<std::int64_t> backward_passes_to_target;
  Metrics final_metrics;             // the last evaluation
  std::int64_t evaluations = 0;
  int world_size = 1;                // ranks of a data-parallel run
  std::int64_t allreduce_bytes = 0;  // gradient bytes each rank sent into all-reduces (real steps only)
  double allreduce_wait_seconds = 0; // of the training time: waiting for gradient all-reduces after backward
  MemoryUse memory;                  // device memory at the last evaluation (-1: the backend cannot tell)

  boost::json::object to_json() const;
};

// summary.json: the summary with the run's name, seed, budget, versions and plugins.
std::string summary_document(const RunSummary& summary, const ResolvedManifest& manifest);

}  // namespace hpt::host
