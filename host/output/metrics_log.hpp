// metrics.jsonl: one JSON object per line, a line per logged step, evaluation,
// roll-back, divergence alarm, checkpoint and resume (docs/architecture.md, "Run
// directory"). The engine says what happened; this class alone decides how it is
// written. What a reader can rely on, even after a crash:
// - every line is a complete JSON object (numbers that are not finite are null);
// - everything up to a checkpoint is on disk (flushed and fsynced) before the
//   checkpoint is published (sync() returns the length the checkpoint records);
// - a resumed run first cuts the file back to that length (the lines after the
//   checkpoint, and a half-written last line, go) and writes a "resume" line, so each
//   step appears once per trajectory;
// - predicted steps carry `forecast_loss` (the dynamics model's forecast, not a
//   measurement) and `discarded` (true when their phase was rolled back).
// The other loggers of run.loggers (output/metrics_sink.hpp: metrics.csv, TensorBoard)
// are sinks of this log: each hears what it writes, in the same order, and resume().
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "hpt/backend.hpp"
#include "hpt/types.hpp"
#include "output/metrics_sink.hpp"

namespace hpt::host {

class MetricsLog {
 public:
  MetricsLog() = default;  // writes nothing (a run without a run directory)
  // Appends to `path`. Steps are logged every `log_every` step-equivalents (probes always).
  MetricsLog(const std::string& path, std::int64_t log_every);
  // Another sink (run.loggers) that hears everything this log writes from now on.
  void add_sink(std::unique_ptr<MetricsSink> sink);

  // `kind`: the step's kind as written, when it is not to_string(r.kind).
  void step(const StepRecord& r, double train_seconds, const char* kind = nullptr);
  // memory: the backend's device memory now; fields it cannot tell (-1) are left out.
  // predicted_steps: kept predicted steps so far, for the sinks (none: the run does not predict).
  void eval(std::int64_t step, double train_seconds, double eval_seconds, std::int64_t backward_passes,
            const Metrics& metrics, const MemoryUse& memory = {},
            std::optional<std::int64_t> predicted_steps = std::nullopt);
  void rollback(std::int64_t step, std::int64_t discarded);
  void divergence(std::int64_t step, const char* alarm, const std::string& reason);
  // [curriculum]: from the batch after `step` on, the task draws from `pool` of its
  // `examples` training examples (scored: the examples were scored just now).
  void curriculum(std::int64_t step, std::int64_t pool, std::int64_t examples, bool scored);
  // [stability]: the learning rate cut ("cut") or raised ("grow") by `factor` after `step`;
  // `scale`: the product of its factors so far (x the configured lr).
  void stability(std::int64_t step, const char* action, double factor, double scale, const std::string& reason);
  // [batch_schedule]: from the real step after `step` on, `multiplier` task batches per real
  // step (`previous` before); the lr multiplied by `lr_factor` (lr_rule).
  void batch_schedule(std::int64_t step, std::int64_t multiplier, std::int64_t previous, double lr_factor);
  // snapshot_seconds: set for a background save (the part of the stall spent on the snapshot).
  void checkpoint(std::int64_t step, const std::string& path, double seconds, double stall_seconds,
                  std::optional<double> snapshot_seconds);

  // A predicted phase: its lines are held until end_phase() says whether it was kept.
  void begin_phase();
  void end_phase(bool rolled_back);

  // Flushes and fsyncs (the sinks: flushes); returns the file's length, which a checkpoint records.
  std::uint64_t sync();
  void flush();
  // Resuming from a checkpoint that recorded `length`: cuts the file back to it (or, for
  // a file shorter than that, to its last complete line) and writes a "resume" line.
  void resume(std::int64_t step, const std::string& checkpoint, std::uint64_t length);

 private:
  // A line held during a predicted phase, with the step it tells the sinks about, if any.
  struct Held {
    boost::json::object line;
    std::optional<LoggedStep> step;
  };
  void append(boost::json::object line);
  static constexpr std::chrono::seconds kFollowInterval{2};
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
  std::unique_ptr<std::ofstream> out_;
  std::string path_;
  std::int64_t log_every_ = 1;
  bool holding_ = false;
  std::vector<Held> held_;
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
};

}  // namespace hpt::host
