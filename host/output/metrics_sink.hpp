// A metrics sink: somewhere a run's numbers go besides metrics.jsonl, chosen with
// [run] loggers = ["jsonl", "csv", "tensorboard"] (docs/manifest.md). metrics.jsonl
// (MetricsLog) stays the record of a run and is always written; MetricsLog hands each sink
// what it writes itself, in the same order:
// - a logged step (every run.log_every, probes always), once its predicted phase, if any,
//   is decided: the steps and probes of a phase that was rolled back come marked `discarded`;
// - an evaluation's metrics; a roll-back; a checkpoint's stall;
// - resume(step): the run went back to a checkpoint at `step`. What a sink wrote for later
//   steps belongs to a trajectory that was abandoned (a crash or a stop after the last
//   checkpoint) and must not be shown twice.
// The resolved manifest reaches a sink once, when it is made (make_metrics_sinks).
// A sink that cannot write throws hpt::RunError, as metrics.jsonl does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hpt/types.hpp"

namespace hpt::host {

struct LoggedStep {
  std::int64_t step = 0;
  std::string kind;            // as metrics.jsonl writes it: full, correct, skipped, predicted, probe
  double loss = 0.0;           // measured; for kind "predicted" the dynamics model's forecast
  double learning_rate = 0.0;
  double grad_norm = 0.0;      // 0 for predicted steps and probes (nothing was measured)
  double train_seconds = 0.0;  // training time so far
  bool discarded = false;      // a predicted step or probe of a phase that was rolled back
};

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  virtual void step(const LoggedStep& s) = 0;
  // predicted_steps: the kept predicted steps so far; none when the run does not predict.
  virtual void eval(std::int64_t step, double train_seconds, const Metrics& metrics,
                    std::optional<std::int64_t> predicted_steps) = 0;
  // The run went back to `step`, discarding that many predicted steps.
  virtual void rollback(std::int64_t step, std::int64_t discarded) = 0;
  // The checkpoint of `step`, and how long training waited for it.
  virtual void checkpoint(std::int64_t step, double stall_seconds) = 0;
  virtual void resume(std::int64_t step) = 0;
  // What was written is in the file (not necessarily synced).
  virtual void flush() = 0;
};

// The sinks named by run.loggers ("jsonl" is MetricsLog itself, always on; a name given
// twice makes one sink), writing into `run_dir`. The manifest validates the names; an
// unknown one here is a hpt::BadInput.
std::vector<std::unique_ptr<MetricsSink>> make_metrics_sinks(const std::vector<std::string>& loggers,
                                                             const std::string& run_dir,
                                                             const std::string& resolved_manifest);

}  // namespace hpt::host
