#include "output/metrics_log.hpp"

#include <cmath>

#include "hpt/error.hpp"

namespace hpt::host {

namespace {
// JSON has no NaN or infinity: a non-finite number is written as null (a diverged
// loss), so that every line stays valid JSON.
boost::json::value number(double v) {
  if (std::isfinite(v)) return v;
  return nullptr;
}
}  // namespace

MetricsLog::MetricsLog(const std::string& path, std::int64_t log_every)
    : out_(std::make_unique<std::ofstream>(path, std::ios::app)), path_(path), log_every_(log_every) {
  if (!*out_) throw RunError("cannot open " + path + " for writing");
}

void MetricsLog::append(const boost::json::object& line) {
  if (out_) *out_ << boost::json::serialize(line) << '\n';
}

void MetricsLog::flush() {
  if (out_) out_->flush();
}

void MetricsLog::step(const StepRecord& r, double train_seconds, const char* kind) {
  if (!out_) return;
  if (r.kind != StepKind::Probe && log_every_ > 1 && r.step % log_every_ != 0) return;
  boost::json::object line;
  line["type"] = "step";
  line["step"] = r.step;
  line["kind"] = kind ? kind : to_string(r.kind);
  line["loss"] = number(r.loss);
  line["lr"] = number(r.learning_rate);
  line["grad_norm"] = number(r.grad_norm);
  line["seconds"] = r.seconds;
  line["train_seconds"] = train_seconds;
  line["forward"] = r.forward_passes;
  line["backward"] = r.backward_passes;
  append(line);
}

void MetricsLog::eval(std::int64_t step, double train_seconds, double eval_seconds, std::int64_t backward_passes,
                      const Metrics& metrics) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "eval";
  line["step"] = step;
  line["train_seconds"] = train_seconds;
  line["eval_seconds"] = eval_seconds;
  line["backward_passes"] = backward_passes;
  for (const auto& [k, v] : metrics) line[k] = number(v);
  append(line);
  flush();
}

void MetricsLog::rollback(std::int64_t step, std::int64_t discarded) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "rollback";
  line["step"] = step;
  line["discarded"] = discarded;
  append(line);
}

void MetricsLog::divergence(std::int64_t step, const char* alarm, const std::string& reason) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "divergence";
  line["step"] = step;
  line["alarm"] = alarm;
  line["reason"] = reason;
  append(line);
}

void MetricsLog::checkpoint(std::int64_t step, const std::string& path, double seconds, double stall_seconds,
                            std::optional<double> snapshot_seconds) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "checkpoint";
  line["step"] = step;
  line["path"] = path;
  line["background"] = snapshot_seconds.has_value();
  line["seconds"] = seconds;
  line["stall_seconds"] = stall_seconds;
  if (snapshot_seconds) line["snapshot_seconds"] = *snapshot_seconds;  // the rest of the stall: waiting for it
  append(line);
}

}  // namespace hpt::host
