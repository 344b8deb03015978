// The tune manifest of `hpt tune`: a base run manifest, a search space over its keys, the
// objective, Optuna's sampler and pruner, the number of trials and parallel workers, and
// the study's storage.
//
//   [tune]
//   name = "fm16-lr"                         # default: the file's name
//   base = "../configs/fm16_baseline.toml"   # a run manifest, relative to this file
//   objective = { metric = "val_loss", direction = "minimize" }  # the final evaluation's metric
//            # or { time_to_target = true }: training seconds to the base's run.target, a miss
//            # counting by the bench protocol's budget rule (2 x its time scaled to the budget)
//   sampler = "tpe"                          # tpe (default), random, grid, cmaes
//   pruner = "median"                        # median (default), hyperband, none, or
//            # { name = "median", startup_trials = 5, warmup_steps = 0 }
//   trials = 30
//   workers = 2                              # trials at a time (default 1)
//   budget = 2000                            # run.max_steps of every trial (default: the base's)
//   seed = 0                                 # the sampler's seed (default: none, not reproducible)
//   runs_dir = "runs/tune/fm16-lr"           # default: runs/tune/<name>
//   overrides = ['backend.threads=1']        # of the base, for every trial, before its parameters
//   storage = "postgresql://user@host/db"    # any Optuna RDB URL; default: sqlite in runs_dir
//   [space]
//   "optimizer.lr" = { log_uniform = [1e-4, 1e-1] }
//   "optimizer.weight_decay" = { uniform = [0.0, 0.1] }      # also step = 0.01
//   "task.hidden_size" = { int = [16, 256], log = true }     # or step = 16
//   "task.batch_size" = { choice = [64, 128, 256] }
//   "optimizer.warmup" = { int = [0, 500], when = { "optimizer.schedule" = "warmup_cosine" } }
//
// A `when` parameter is sampled only in trials where the named choice parameter has that
// value (Optuna's define-by-run conditional space). Every space key is checked against the
// base: each bound and each choice, applied as an override, must make a manifest that
// `hpt validate` accepts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/manifest.hpp"

namespace hpt::host {

struct TuneParam {
  enum class Type { Float, Int, Choice };
  std::string name;  // the dotted manifest key, "optimizer.lr"
  Type type = Type::Float;
  double low = 0, high = 0;      // Float and Int
  bool log = false;
  std::optional<double> step;    // Float (uniform) and Int
  struct Choice {
    std::string toml;            // as an override's value: 128, "linear"
    std::string json;            // as Optuna sees it
  };
  std::vector<Choice> choices;   // Choice
  std::vector<std::pair<std::string, Choice>> when;  // sampled only when these parameters have these values
  std::string where;             // file:line:column
};

struct TuneObjective {
  bool time_to_target = false;
  std::string metric;            // the metric (time to target: the base's target metric)
  bool maximize = false;         // the study's direction
  bool metric_maximize = false;  // time to target: whether the target metric rises
  std::string label;             // "val_loss", "seconds to val_accuracy >= 0.85"
};

struct TunePruner {
  std::string name = "median";   // median, hyperband, none
  std::int64_t startup_trials = 5;
  std::int64_t warmup_steps = 0;
};

struct TuneManifest {
  std::string path;              // the tune file
  std::string name;
  std::string base;              // absolute path of the base run manifest
  TuneObjective objective;
  std::string sampler = "tpe";
  TunePruner pruner;
  std::int64_t trials = 0;
  std::int64_t workers = 1;
  std::optional<std::int64_t> budget;
  std::optional<std::int64_t> seed;
  std::string runs_dir;          // absolute: the tune directory
  std::string storage;           // an Optuna storage URL
  bool local_storage = true;     // the default SQLite file in runs_dir
  std::vector<TuneParam> params; // in sampling order (a `when` parameter after the one it names)
  std::vector<std::string> run_overrides;  // for every trial, before its parameters: run.max_steps, then tune.overrides
};

// Parses and validates `path` with the command-line `overrides` applied to the tune file
// (tune.trials=50, "space.optimizer.lr"={ uniform = [0.01, 0.1] }). Every problem is
// reported with file:line:column and the key, in one hpt::BadInput.
TuneManifest load_tune_manifest(const std::string& path, const std::vector<std::string>& overrides = {});

// Whether `path` is a TOML file with a [tune] section.
bool is_tune_manifest(const std::string& path);

// The JSON spec the Python driver (tools/tune/hpt_tune.py) runs from.
std::string tune_spec_json(const TuneManifest& tune, const std::string& hpt_exe);

}  // namespace hpt::host
