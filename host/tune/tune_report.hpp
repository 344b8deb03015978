// The outputs of `hpt tune` made on the C++ side from what the driver wrote
// (trials.json, importance.json in the tune directory): best.toml, the base manifest with
// the best trial's overrides, runnable as it is; and report.html, in the bench report's
// style: the objective by trial (pruned trials hollow at their last reported value), the
// reported evaluations against step (pruned trials where they stopped), one slice plot
// per parameter, the parameter importances when Optuna could compute them, every trial.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "bench/bench_results.hpp"
#include "tune/tune_manifest.hpp"

namespace hpt::host {

struct TuneTrial {
  std::int64_t number = 0;
  std::string state;                      // COMPLETE, PRUNED, FAIL, RUNNING
  std::optional<double> value;            // COMPLETE only
  std::vector<std::pair<std::string, boost::json::value>> params;  // as Optuna sampled them
  std::vector<std::string> overrides;     // key=TOML value, as the trial's `hpt run` got them
  std::string run_dir;
  std::optional<double> steps, train_seconds, seconds;
  bool interrupted = false;
  std::string error;
  std::vector<CurvePoint> intermediate;   // (step, reported value)
};

struct TuneResults {
  std::vector<TuneTrial> trials;
  std::vector<std::pair<std::string, double>> importance;  // largest first; empty: none
  std::string importance_missing;         // why there is none
  std::string command;
  MachineInfo machine;
};

// Reads trials.json and importance.json from the tune directory (hpt::RunError when the
// driver wrote none).
TuneResults read_tune_results(const TuneManifest& tune, const std::string& command);

// The best COMPLETE trial by the objective's direction; none when no trial completed.
std::optional<TuneTrial> best_trial(const TuneManifest& tune, const TuneResults& results);

// best.toml: the base manifest (its includes and preset merged) with the tune's run
// overrides and the trial's, its relative paths made absolute so it runs from anywhere.
std::string best_manifest_toml(const TuneManifest& tune, const TuneTrial& best);

std::string tune_report_html(const TuneManifest& tune, const TuneResults& results);

// Writes report.html, and best.toml when a trial completed; returns their paths.
std::vector<std::string> write_tune_reports(const TuneManifest& tune, const TuneResults& results);

}  // namespace hpt::host
