// The outputs of `hpt bench`: results.json (raw figures), report.md (the table) and
// report.html (a self-contained page: inline SVG plots, no scripts, no network).
#pragma once

#include <string>
#include <vector>

#include "bench/bench_manifest.hpp"
#include "bench/bench_results.hpp"
#include "bench/bench_runner.hpp"

namespace hpt::host {

// Reads every planned run's directory back and summarises each variant. `outcomes`
// (from run_suite, empty for --report-only) add the exit codes of runs made now.
BenchResults collect_results(const BenchManifest& bench, const std::vector<PlannedRun>& runs,
                             const std::vector<RunOutcome>& outcomes, const std::string& command);

// report.md: per variant, median (min-max) over seeds of time, steps and backward
// passes to target, final metric, predicted fraction, roll-backs and speedup against
// the baseline; then every run; with the date, the machine and the command.
std::string report_markdown(const BenchResults& results);

// report.html: the same table under four plots: (a) time-to-target bars with min-max
// whiskers, (b) validation metric against training time (median over seeds, min-max
// band), (c) training loss against step, (d) a phase timeline per variant (one seed).
std::string report_html(const BenchResults& results);

// Writes results.json, report.md and report.html into `dir`; returns their paths.
std::vector<std::string> write_bench_reports(const BenchResults& results, const std::string& dir);

}  // namespace hpt::host
