#include "output/metrics_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "hpt/error.hpp"
#include "output/run_directory.hpp"

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

void MetricsLog::add_sink(std::unique_ptr<MetricsSink> sink) { sinks_.push_back(std::move(sink)); }

void MetricsLog::append(boost::json::object line) {
  if (!out_) return;
  if (holding_) {
    held_.push_back({std::move(line), std::nullopt});
    return;
  }
  *out_ << boost::json::serialize(line) << '\n';
  // Readers that follow the file while the run goes on (the bench's progress line, `tail
  // -f`) see it at least every couple of seconds, not only at evaluations and checkpoints.
  const auto now = std::chrono::steady_clock::now();
  if (now - last_flush_ >= kFollowInterval) {
    out_->flush();
    last_flush_ = now;
  }
}

void MetricsLog::flush() {
  if (!out_) return;
  // A full disk (or a file size limit) fails the stream's write; every later line would
  // be dropped silently, and a checkpoint published after it would claim metrics that
  // are not there. The run stops instead; its last checkpoint and the lines before it stand.
  flush_or_throw(*out_, path_);
  for (auto& sink : sinks_) sink->flush();
}

void MetricsLog::begin_phase() { holding_ = true; }

void MetricsLog::end_phase(bool rolled_back) {
  holding_ = false;
  for (auto& held : held_) {
    if (held.line.at("type") == "step" && held.line.at("kind") == "predicted") held.line["discarded"] = rolled_back;
    append(std::move(held.line));
    if (held.step) {
      // The phase's predicted steps and its probes after them: a roll-back discards them all.
      held.step->discarded = rolled_back;
      for (auto& sink : sinks_) sink->step(*held.step);
    }
  }
  held_.clear();
}

std::uint64_t MetricsLog::sync() {
  if (!out_) return 0;
  flush();
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw RunError("cannot open " + path_ + " to sync it: " + std::strerror(errno));
  int failed = ::fsync(fd);
  int err = errno;
  struct stat st {};
  ::fstat(fd, &st);
  ::close(fd);
  if (failed != 0) throw RunError("cannot sync " + path_ + ": " + std::strerror(err));
  return static_cast<std::uint64_t>(st.st_size);
}

void MetricsLog::resume(std::int64_t step, const std::string& checkpoint, std::uint64_t length) {
  if (!out_) return;
  flush();
  std::error_code ec;
  std::uint64_t size = std::filesystem::file_size(path_, ec);
  if (ec) size = 0;
  std::uint64_t keep = std::min(size, length);
  if (keep == size && keep > 0) {
    // Shorter than the checkpoint says (or an older checkpoint that recorded nothing):
    // keep every complete line, drop a half-written last one.
    std::ifstream in(path_, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t end = text.rfind('\n');
    keep = end == std::string::npos ? 0 : end + 1;
  }
  if (keep < size && ::truncate(path_.c_str(), static_cast<off_t>(keep)) != 0)
    throw RunError("cannot cut " + path_ + " back to the checkpoint: " + std::strerror(errno));
  boost::json::object line;
  line["type"] = "resume";
  line["step"] = step;
  line["checkpoint"] = checkpoint;
  line["discarded_bytes"] = size - keep;
  append(std::move(line));
  for (auto& sink : sinks_) sink->resume(step);
  flush();
}

void MetricsLog::step(const StepRecord& r, double train_seconds, const char* kind) {
  if (!out_) return;
  if (r.kind != StepKind::Probe && log_every_ > 1 && r.step % log_every_ != 0) return;
  boost::json::object line;
  line["type"] = "step";
  line["step"] = r.step;
  line["kind"] = kind ? kind : to_string(r.kind);
  // A predicted step's loss is the forecast's, not a measurement.
  line[r.kind == StepKind::Predicted ? "forecast_loss" : "loss"] = number(r.loss);
  line["lr"] = number(r.learning_rate);
  line["grad_norm"] = number(r.grad_norm);
  line["seconds"] = r.seconds;
  line["train_seconds"] = train_seconds;
  line["forward"] = r.forward_passes;
  line["backward"] = r.backward_passes;
  LoggedStep logged;
  logged.step = r.step;
  logged.kind = kind ? kind : to_string(r.kind);
  logged.loss = r.loss;
  logged.learning_rate = r.learning_rate;
  logged.grad_norm = r.grad_norm;
  logged.train_seconds = train_seconds;
  if (holding_) {
    held_.push_back({std::move(line), std::move(logged)});  // the phase's end says whether it stands
    return;
  }
  append(std::move(line));
  for (auto& sink : sinks_) sink->step(logged);
}

void MetricsLog::eval(std::int64_t step, double train_seconds, double eval_seconds, std::int64_t backward_passes,
                      const Metrics& metrics, const MemoryUse& memory, std::optional<std::int64_t> predicted_steps) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "eval";
  line["step"] = step;
  line["train_seconds"] = train_seconds;
  line["eval_seconds"] = eval_seconds;
  line["backward_passes"] = backward_passes;
  if (memory.allocated >= 0) line["memory_allocated_bytes"] = memory.allocated;
  if (memory.peak >= 0) line["memory_peak_bytes"] = memory.peak;
  for (const auto& [k, v] : metrics) line[k] = number(v);
  append(std::move(line));
  for (auto& sink : sinks_) sink->eval(step, train_seconds, metrics, predicted_steps);
  flush();
}

void MetricsLog::rollback(std::int64_t step, std::int64_t discarded) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "rollback";
  line["step"] = step;
  line["discarded"] = discarded;
  append(std::move(line));
  for (auto& sink : sinks_) sink->rollback(step, discarded);
}

void MetricsLog::divergence(std::int64_t step, const char* alarm, const std::string& reason) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "divergence";
  line["step"] = step;
  line["alarm"] = alarm;
  line["reason"] = reason;
  append(std::move(line));
}

void MetricsLog::curriculum(std::int64_t step, std::int64_t pool, std::int64_t examples, bool scored) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "curriculum";
  line["step"] = step;
  line["pool"] = pool;
  line["examples"] = examples;
  line["scored"] = scored;
  append(std::move(line));
}

void MetricsLog::stability(std::int64_t step, const char* action, double factor, double scale,
                           const std::string& reason) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "stability";
  line["step"] = step;
  line["action"] = action;
  line["factor"] = factor;
  line["scale"] = scale;
  line["reason"] = reason;
  append(std::move(line));
}

void MetricsLog::batch_schedule(std::int64_t step, std::int64_t multiplier, std::int64_t previous, double lr_factor) {
  if (!out_) return;
  boost::json::object line;
  line["type"] = "batch_schedule";
  line["step"] = step;
  line["multiplier"] = multiplier;
  line["previous"] = previous;
  line["lr_factor"] = lr_factor;
  append(std::move(line));
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
  append(std::move(line));
  for (auto& sink : sinks_) sink->checkpoint(step, stall_seconds);
}

}  // namespace hpt::host
