// The run directory: runs/<name>/ with config.resolved.toml, metrics.jsonl,
// summary.json, checkpoints/ and hpt.log (metrics.jsonl is written by MetricsLog).
#pragma once

#include <fstream>
#include <memory>
#include <ostream>
#include <string>

#include <spdlog/logger.h>

namespace hpt::host {

class RunDirectory {
 public:
  // Creates <runs_dir>/<name>. An existing run directory is only reused when
  // `resume` is set, or emptied when `overwrite` is set; otherwise hpt::BadInput.
  RunDirectory(const std::string& runs_dir, const std::string& name, bool resume, bool overwrite);

  const std::string& path() const { return path_; }
  // Removes the directory if this run made it (a run that failed to start leaves no
  // stub behind, so the corrected command is not refused as "already exists"). A
  // resumed run's directory is never removed.
  void remove_if_fresh();
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to `name` atomically (temporary file, fsync, rename).
  void write_file(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
  bool fresh_ = false;  // made (or emptied) by this run, not resumed
};

// A logger that writes to the console (at `console_level`) and to <run_dir>/hpt.log
// (everything from debug up). With an empty run_dir, the console only.
std::shared_ptr<spdlog::logger> make_run_logger(const std::string& run_dir, const std::string& console_level);

// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename.
void write_file_atomic(const std::string& path, const std::string& text);

// Flushes `out`, the file at `path`; throws hpt::RunError "cannot write PATH: <errno text>"
// when the stream has failed (a full disk, a file size limit): the metrics files stop
// the run rather than drop lines silently.
void flush_or_throw(std::ostream& out, const std::string& path);

}  // namespace hpt::host
