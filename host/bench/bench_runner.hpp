// Runs the planned runs of a bench suite, each as its own `hpt run` process, in the
// planned (interleaved) order, skipping runs already complete so a suite can resume.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "bench/bench_manifest.hpp"

namespace hpt::host {

// What became of one planned run in this invocation.
struct RunOutcome {
  std::string name;
  bool skipped = false;     // already complete: not run again
  int exit_code = 0;        // of `hpt run`; 128 + signal when a signal ended it
  double wall_seconds = 0.0;
};

// Whether `run.run_dir` holds a finished run (summary.json with status completed,
// target_reached or early_stopped) of exactly the manifest planned now
// (config.resolved.toml equal to `run.resolved.to_toml()`). A run whose variant was
// edited since, or that failed or was interrupted, is not complete.
bool run_complete(const PlannedRun& run);

// Where the run's stdout and stderr go: <run_dir>/output.log, or <run_dir>.log beside
// it when `hpt run` stopped before it made its run directory.
std::string run_log_path(const PlannedRun& run);

// Runs every incomplete run of `runs` with `hpt_exe run BASE overrides... --overwrite
// --no-progress`, one at a time, and prints progress on `out`: which run, i/N, the running
// run's progress line (bench/run_progress.hpp) and, after each run, its result and the
// suite's ETA from the mean run time so far. `terminal`: the progress line is redrawn in
// place (carriage return); otherwise it is a plain line every few seconds, and once more
// when the run ends unless that would repeat the last one. A failed run is reported and
// the suite goes on. SIGINT or SIGTERM is passed on to the running run, then the suite
// stops with hpt::host::Interrupted.
std::vector<RunOutcome> run_suite(const BenchManifest& bench, const std::vector<PlannedRun>& runs,
                                  const std::string& hpt_exe, std::ostream& out, bool terminal = false);

}  // namespace hpt::host
