// metrics.jsonl: one JSON object per line, a line per logged step, evaluation,
// roll-back, divergence alarm and checkpoint (docs/architecture.md, "Run directory").
// The engine says what happened; this class alone decides how it is written.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <boost/json.hpp>

#include "hpt/types.hpp"

namespace hpt::host {

class MetricsLog {
 public:
  MetricsLog() = default;  // writes nothing (a run without a run directory)
  // Appends to `path`. Steps are logged every `log_every` step-equivalents (probes always).
  MetricsLog(const std::string& path, std::int64_t log_every);

  // `kind`: the step's kind as written, when it is not to_string(r.kind).
  void step(const StepRecord& r, double train_seconds, const char* kind = nullptr);
  void eval(std::int64_t step, double train_seconds, double eval_seconds, std::int64_t backward_passes,
            const Metrics& metrics);
  void rollback(std::int64_t step, std::int64_t discarded);
  void divergence(std::int64_t step, const char* alarm, const std::string& reason);
  // snapshot_seconds: set for a background save (the part of the stall spent on the snapshot).
  void checkpoint(std::int64_t step, const std::string& path, double seconds, double stall_seconds,
                  std::optional<double> snapshot_seconds);
  void flush();

 private:
  void append(const boost::json::object& line);
  std::unique_ptr<std::ofstream> out_;
  std::string path_;
  std::int64_t log_every_ = 1;
};

}  // namespace hpt::host
