// The figures of a bench suite: each run's summary and curves read back from its run
// directory, scored against the target with the budget rule, and summarised per variant.
//
// Budget rule (NiNo's, DESIGN.md "Benchmark protocol"): a run that never reached the
// target counts as twice its budget B = run.max_steps:
//   steps to target           = 2 B
//   training time to target   = 2 * train_seconds * B / steps   (its time, scaled to the
//                               budget when it stopped early, then doubled)
//   backward passes to target = 2 * backward_passes * B / steps
// so that medians over seeds stay meaningful when some runs miss.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "config/manifest.hpp"

namespace hpt::host {

struct CurvePoint {
  double x = 0.0;
  double y = 0.0;
};

// A stretch of one kind of step on the phase timeline. x counts step-equivalents
// executed, discarded predictions included (the engine's step rewinds on a roll-back;
// this does not). Its resolution is run.log_every.
struct PhaseSegment {
  double begin = 0.0;
  double end = 0.0;
  std::string kind;  // full, predicted, correct
};

struct RunRecord {
  std::string variant;
  std::int64_t seed = 0;
  std::string name;
  std::string run_dir;
  std::string log;                       // the run's stdout and stderr
  bool ran = false;                      // its run directory or its log exists ("not run" otherwise)
  bool finished = false;                 // summary.json with a final status
  std::optional<int> exit_code;          // when it ran in this invocation
  boost::json::object summary;           // summary.json as written
  std::vector<boost::json::object> evals;  // the eval lines of metrics.jsonl
  std::vector<CurvePoint> loss;          // training loss of real steps, mean per bin of steps
  std::vector<CurvePoint> lr;            // learning rate of real steps, mean per bin
  std::vector<CurvePoint> grad_norm;     // gradient norm of real steps, mean per bin
  std::vector<PhaseSegment> phases;
  std::vector<double> probes;            // x of each probe
  std::vector<double> rollbacks;         // x of each roll-back
};

// Reads `run_dir` (summary.json, metrics.jsonl); a run without them is not finished.
// The loss, lr and gradient norm curves have at most `loss_points` bins of equal width
// over the run's budget, so that bins line up across seeds.
RunRecord read_run(const std::string& variant, std::int64_t seed, const std::string& run_dir, std::size_t loss_points);

// A finished run's figures to the target, the budget rule applied when it missed.
struct TargetScore {
  bool reached = false;
  double seconds = 0.0;
  double steps = 0.0;
  double backward_passes = 0.0;
};
TargetScore score_run(const boost::json::object& summary);

// Median (the mean of the two middle values for an even count), min and max.
struct Spread {
  std::size_t count = 0;
  double median = 0.0;
  double min = 0.0;
  double max = 0.0;
};
Spread spread(std::vector<double> values);

// What two variants are compared on, run by run: training time or backward passes to the
// target (the hardware-free measure for a hybrid, whose predicted steps need none).
enum class TargetMeasure { Seconds, BackwardPasses };

// The ordered pair (variant, against): `against`'s figure to target over `variant`'s, seed
// by seed (in seed order) for every seed where both finished, the budget rule applied to
// both: above 1, `variant` is faster (needs fewer backward passes).
std::vector<double> pair_ratios(const std::vector<RunRecord>& runs, const std::string& variant,
                                const std::string& against, TargetMeasure measure);

// Baseline time to target over the variant's, seed by seed, for every seed where both
// finished (budget rule applied to both): above 1, the variant is faster.
std::vector<double> speedups(const std::vector<RunRecord>& runs, const std::string& baseline,
                             const std::string& variant);

// One cell of the pairwise matrix: pair_ratios(variant, against) over the seeds.
struct PairwiseSpeedup {
  std::string variant;
  std::string against;
  Spread ratio;
};

// Every ordered pair of two different variants, row by row in the order of `variants`:
// (a, b), (a, c), (b, a), (b, c), ...
std::vector<PairwiseSpeedup> pairwise_speedups(const std::vector<RunRecord>& runs,
                                               const std::vector<std::string>& variants, TargetMeasure measure);

struct VariantStats {
  std::string name;
  std::string metric;         // the variant's target metric (its target_metric, or the bench's)
  std::size_t runs = 0;
  std::size_t finished = 0;
  std::size_t reached = 0;
  Spread seconds;             // to target, budget rule applied
  Spread steps;
  Spread backward_passes;
  Spread final_metric;        // the target metric at the last evaluation (at the target or the budget)
  Spread metric_at_step;      // the target metric at the first evaluation at or after target.min_steps
  Spread predicted_fraction;
  Spread rollbacks;
  Spread speedup;             // against the baseline
};
// at_step > 0: metric_at_step is taken at the first evaluation at or after that step.
VariantStats variant_stats(const std::vector<RunRecord>& runs, const std::string& variant,
                           const std::string& baseline, const std::string& metric, std::int64_t at_step = 0);

// The metric at the run's first evaluation at or after `step`; none if it has none.
std::optional<double> metric_at_step(const RunRecord& run, const std::string& metric, std::int64_t step);

// Where and when the suite ran.
struct MachineInfo {
  std::string arch;      // uname -m
  unsigned cores = 0;
  std::string cpu_model; // /proc/cpuinfo "model name"
  std::string date;      // UTC, e.g. 2025-03-01 14:05 UTC
};
MachineInfo this_machine();

struct BenchResults {
  std::string name;
  std::string bench_file;
  std::string base;
  std::string baseline;
  std::vector<std::string> variants;                  // in manifest order
  std::vector<std::vector<std::string>> overrides;    // per variant
  std::vector<std::int64_t> seeds;
  std::int64_t budget = 0;
  MetricGoal target;
  std::string command;
  MachineInfo machine;
  std::vector<RunRecord> runs;                        // in run order
  std::vector<VariantStats> stats;                    // per variant
  std::vector<PairwiseSpeedup> pairwise_seconds;      // every variant against every other, in time to target
  std::vector<PairwiseSpeedup> pairwise_backward_passes;  // the same in backward passes to target
};

// results.json: the suite, the machine, every run's raw figures and curves, the stats, the
// pairwise speedups ("pairwise_speedups" in time, "pairwise_backward_passes").
boost::json::object results_json(const BenchResults& results);

}  // namespace hpt::host
