// The TOML manifest: parsing, command-line overrides, validation against the run's
// own keys and each plugin's declared options, and the resolved manifest.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "hpt/hpt.hpp"
#include "config/param_groups.hpp"
#include "plugins/plugin_loader.hpp"

namespace hpt::host {

// A raw manifest: the parsed file with the command-line overrides applied.
class Manifest {
 public:
  // Parses `path` and applies `overrides` ("key.path=value", the value parsed as TOML,
  // or taken as a string when it is not TOML). Throws hpt::BadInput with file:line:column.
  static Manifest load(const std::string& path, const std::vector<std::string>& overrides = {});
  static Manifest parse(const std::string& text, const std::string& source_name,
                        const std::vector<std::string>& overrides = {});

  const toml::table& table() const { return table_; }
  const std::string& path() const { return path_; }

  // "configs/x.toml:12:5" for a node from the file, "override 'a.b=c'" for one from the
  // command line; `dotted` is the node's key path.
  std::string where(const toml::source_region& region, const std::string& dotted) const;

 private:
  toml::table table_;
  std::string path_;
  std::map<std::string, std::string> overrides_;  // dotted key -> the override as given
};

// How a target or early-stopping metric is judged.
struct MetricGoal {
  std::string metric;
  double value = 0.0;       // target: the value to reach; early_stop: min_delta
  std::int64_t patience = 0;
  bool maximize = true;     // accuracy-like metrics rise, loss-like ones fall
  bool stop = true;         // target: stop the run when reached (false: record and go on)
  std::int64_t min_steps = 0;  // target, with stop: go on to at least this many step-equivalents
};

// [run], validated.
struct RunConfig {
  std::string name;
  std::int64_t seed = 0;
  std::int64_t max_steps = 0;
  std::int64_t eval_every = 0;
  std::int64_t eval_threads = 0;  // run.eval_threads: CPU threads while evaluating (0: as training)
  std::int64_t log_every = 0;
  std::int64_t probe_interval = 0;
  std::int64_t record_trajectory = 0;  // run.record_trajectory: weights every N step-equivalents (0: off)
  std::string runs_dir;
  std::vector<std::string> plugin_dirs;
  bool resume = false;
  std::string log_level;
  std::optional<MetricGoal> target;
  std::optional<MetricGoal> early_stop;
  Options divergence;  // run.divergence = { ... }: the divergence monitor's settings
};

// One plugin section, validated against the plugin's declared options.
struct PluginChoice {
  PluginKind kind;
  std::shared_ptr<const PluginInfo> info;
  Options options;
};

struct ResolvedManifest {
  std::string source;  // the manifest file
  RunConfig run;
  Options run_options;  // [run] as declared, for writing back
  Options distributed;  // [distributed] (config/distributed_settings.hpp), defaults filled in
  // [averaging] and [lookahead] (config/averaging_settings.hpp), defaults filled in; none: no section.
  std::optional<Options> averaging;
  std::optional<Options> lookahead;
  // [curriculum] (config/curriculum_settings.hpp), defaults filled in; none: no section.
  std::optional<Options> curriculum;
  // [stability] and [batch_schedule] (config/stability_settings.hpp,
  // config/batch_schedule_settings.hpp), defaults filled in; none: no section.
  std::optional<Options> stability;
  std::optional<Options> batch_schedule;
  // [[param_groups]] (config/param_groups.hpp), in the manifest's order; empty: none.
  std::vector<ParamGroupSpec> param_groups;
  std::map<PluginKind, PluginChoice> plugins;  // the kinds in use

  bool has(PluginKind kind) const { return plugins.count(kind) != 0; }
  const PluginChoice& at(PluginKind kind) const { return plugins.at(kind); }
  // The manifest after defaults and overrides, as TOML.
  std::string to_toml() const;
};

// The keys of [run] (for docs and `hpt validate`).
const std::vector<OptionSpec>& run_option_specs();

// The host's keys of every [task] section, whatever its plugin: init_from (a Path: the
// weights the run starts from, "" for none).
const std::vector<OptionSpec>& task_host_option_specs();

// Validates every section; loads plugin libraries through `loader` to learn their options.
// Collects every problem it finds and throws one hpt::BadInput listing them all.
ResolvedManifest resolve(const Manifest& manifest, PluginLoader& loader);

// run.plugin_dirs of a raw manifest (the loader needs them before resolve()).
std::vector<std::string> plugin_dirs_of(const Manifest& manifest);

// The closest of `candidates` to `word` by edit distance, or "" when none is close.
std::string closest_name(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace hpt::host
