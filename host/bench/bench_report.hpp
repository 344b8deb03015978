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
// the baseline; "Speedups run by run": every variant against every other, in time and in
// backward passes to target; then every run; with the date, the machine and the command.
std::string report_markdown(const BenchResults& results);

// report.html: a headline per variant ("1.84x faster than baseline (median of 5 seeds)"),
// the same tables and these plots: (a) time-to-target bars with min-max whiskers and a
// dot per seed; the target metric against training time; validation loss, training
// loss, learning rate and gradient norm against step (each: one thin line per seed, the
// min-max band over seeds and the median); the phase timeline of every run.
std::string report_html(const BenchResults& results);

// The <style> of the HTML reports (bench's and `hpt tune`'s): one look for both.
const char* report_css();

// "1.84x faster than baseline (median of 5 seeds)", "1.41x slower than baseline (median
// of 3 of 5 seeds)": the median over seeds of the baseline's time to target over the
// variant's (above 1: faster), or why there is none; `seeds`: the suite's seed count.
std::string speedup_headline(const VariantStats& stats, const std::string& baseline, std::size_t seeds);

// Writes results.json, report.md and report.html into `dir`; returns their paths.
std::vector<std::string> write_bench_reports(const BenchResults& results, const std::string& dir);

}  // namespace hpt::host
