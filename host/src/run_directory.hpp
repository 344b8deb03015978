// The run directory: runs/<name>/ with config.resolved.toml, metrics.jsonl,
// summary.json, checkpoints/ and hpt.log.
#pragma once

#include <fstream>
#include <memory>
#include <string>

#include <boost/json.hpp>
#include <spdlog/logger.h>

namespace hpt::host {

class RunDirectory {
 public:
  // Creates <runs_dir>/<name>. An existing run directory is only reused when
  // `resume` is set, or emptied when `overwrite` is set; otherwise hpt::BadInput.
  RunDirectory(const std::string& runs_dir, const std::string& name, bool resume, bool overwrite);

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to `name` atomically (temporary file, fsync, rename).
  void write_file(const std::string& name, const std::string& text) const;

  // Appends one JSON object as a line to metrics.jsonl (buffered; flush() pushes it out).
  void append_metrics(const boost::json::object& line);
  void flush();

 private:
  std::string path_;
  std::ofstream metrics_;
};

// A logger that writes to the console (at `console_level`) and to <run_dir>/hpt.log
// (everything from debug up). With an empty run_dir, the console only.
std::shared_ptr<spdlog::logger> make_run_logger(const std::string& run_dir, const std::string& console_level);

// Writes `text` to `path` atomically: a temporary file beside it, fsync, rename.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace hpt::host
