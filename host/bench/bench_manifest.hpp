// The bench manifest of `hpt bench`: a base run manifest, variants (each a name and
// a set of overrides), seeds, the target, the budget and which variant is the baseline.
//
//   [bench]
//   name = "fm16"                          # default: the file's name
//   base = "../configs/fm16_baseline.toml" # relative to the bench file
//   seeds = [0, 1, 2, 3, 4]
//   baseline = "baseline"
//   target = { metric = "val_accuracy", value = 0.895 }  # default: the base's run.target
//   budget = 20000                         # run.max_steps of every run (default: the base's)
//   runs_dir = "runs/bench/fm16"           # default: runs/bench/<name>
//
//   [[variant]]
//   name = "hybrid_linear"
//   overrides = ['dynamics.plugin="linear"']
//   [variant.set]                          # key.path = value, the same as an override
//   "optimizer.lr" = 3e-3
//
//   [[variant]]                            # a grid: one variant per combination
//   name = "adamw"                         # -> adamw-lr0.001, adamw-lr0.003
//   grid = { "optimizer.lr" = [1e-3, 3e-3] }
//
// On the command line (`hpt bench BENCH.toml key=value ...`), bench.* keys override the
// bench file (bench.seeds=[0,1]); any other key is a run override applied to the base
// manifest of every variant (a variant that sets the same key keeps its value), except
// run.max_steps, run.target and run.runs_dir, which mean bench.budget, bench.target and
// bench.runs_dir.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/manifest.hpp"

namespace hpt::host {

struct BenchVariant {
  std::string name;
  std::vector<std::string> overrides;  // "key.path=value": `overrides` first, then `set`
  std::string target_metric;           // the variant's metric for the target ("" : the bench's)
  std::string where;                   // file:line:column of the variant's table
};

struct BenchManifest {
  std::string path;                    // the bench file
  std::string name;
  std::string base;                    // absolute path of the base run manifest
  std::vector<std::int64_t> seeds;
  std::string baseline;
  std::vector<std::string> target;     // "run.target=..." when bench.target is given
  std::optional<std::int64_t> budget;
  std::string runs_dir;                // absolute
  std::vector<BenchVariant> variants;  // grid variants expanded, one per combination
  std::vector<std::string> run_overrides;  // from the command line, for every variant's run
};

// Parses and validates `path` with the command-line `overrides` applied (see above).
// Every problem is reported with file:line:column (or the override), what was expected
// and what was given, in one hpt::BadInput.
BenchManifest load_bench_manifest(const std::string& path, const std::vector<std::string>& overrides = {});

// Whether `path` is a TOML file with a [bench] section (a bench manifest, not a run
// manifest). A file that does not parse is not.
bool is_bench_manifest(const std::string& path);

// One run of the suite: a variant at a seed, its command-line overrides and the run
// manifest they resolve to.
struct PlannedRun {
  std::string variant;
  std::int64_t seed = 0;
  std::string name;                    // <variant>-s<seed>
  std::string run_dir;                 // <runs_dir>/runs/<name>
  std::vector<std::string> overrides;  // for `hpt run BASE overrides...`: the command line's
                                       // run overrides, the variant's, then the bench's own
  ResolvedManifest resolved;
};

// Every run in the order they go: seed-major, variants interleaved (A B C, A B C, ...).
// Resolves each run's manifest as `hpt run` will (loading the plugins it names), so a
// typo in a variant fails here, with hpt::BadInput naming the variant, rather than
// hours into the suite (a bad command-line run override fails once, before any variant). The suite needs a target (bench.target or the base's run.target).
std::vector<PlannedRun> plan_runs(const BenchManifest& bench);

}  // namespace hpt::host
