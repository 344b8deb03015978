#include "bench/bench_manifest.hpp"

#include "config/message_text.hpp"
#include "config/table_checker.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTopLevel = {"bench", "variant"};
const std::vector<std::string> kBenchKeys = {"name", "base", "seeds", "baseline", "target", "budget", "runs_dir"};
const std::vector<std::string> kTargetKeys = {"metric", "value", "mode", "stop", "min_steps"};
const std::vector<std::string> kVariantKeys = {"name", "overrides", "set", "grid", "target_metric"};
constexpr std::size_t kMaxGridVariants = 1000;  // a grid larger than this is a typo, not a plan

// Run keys the bench sets itself, so that every variant runs the same protocol.
const std::vector<std::pair<std::string, std::string>> kBenchOwnedKeys = {
    {"run.seed", "bench.seeds"},       {"run.name", "the bench (<variant>-s<seed>)"},
    {"run.runs_dir", "bench.runs_dir"}, {"run.resume", "the bench"},
    {"run.max_steps", "bench.budget"}, {"run.target", "bench.target"},
};

// Owned run keys a command-line override may still give: they mean these bench keys.
const std::vector<std::pair<std::string, std::string>> kRunKeyAliases = {
    {"run.max_steps", "bench.budget"}, {"run.target", "bench.target"}, {"run.runs_dir", "bench.runs_dir"}};

bool key_at_or_under(const std::string& key, const std::string& prefix) {
  return key == prefix || key.rfind(prefix + ".", 0) == 0;
}

// The command line's overrides: bench.* keys (and the run keys that mean bench keys) for
// the bench file, every other key for the run manifest of every variant.
struct SplitOverrides {
  std::vector<std::string> bench;
  std::vector<std::string> run;
};

SplitOverrides split_overrides(const std::vector<std::string>& given) {
  SplitOverrides out;
  for (const auto& o : given) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw BadInput("override '" + o + "' is not of the form key.path=value (e.g. bench.seeds=[0,1] or optimizer.lr=3e-3)");
    std::string key = o.substr(0, eq);
    if (key_at_or_under(key, "bench")) {
      out.bench.push_back(o);
      continue;
    }
    if (key_at_or_under(key, "variant"))
      throw BadInput("override '" + o + "': '" + key + "': variants cannot be changed from the command line; edit the "
                     "bench file, or give a run key without 'variant.' (e.g. optimizer.lr=3e-3) to change every variant");
    if (key == "run")
      throw BadInput("override '" + o + "': give [run] keys one by one (e.g. run.eval_every=100)");
    auto alias = std::find_if(kRunKeyAliases.begin(), kRunKeyAliases.end(),
                              [&](const auto& a) { return key_at_or_under(key, a.first); });
    if (alias != kRunKeyAliases.end()) {
      out.bench.push_back(alias->second + o.substr(alias->first.size()));
      continue;
    }
    for (const auto& [owned, by] : kBenchOwnedKeys)
      if (key_at_or_under(key, owned))
        throw BadInput("override '" + o + "': '" + key + "' cannot be overridden in a bench: " + owned + " is set by " +
                       by + " for every run alike");
    out.run.push_back(o);
  }
  return out;
}

std::string toml_string(const std::string& s) { return toml_text(toml::value<std::string>(s)); }

// A float as TOML in the fewest digits that read back to the same double: 0.03, not
// toml++'s 0.029999999999999999 (variant names and the reports show these).
std::string float_text(double v) {
  if (!std::isfinite(v)) return toml_text(toml::value<double>(v));
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;
  if (text.find_first_of(".e") == std::string::npos) text += ".0";  // stays a float
  return text;
}

// A value as TOML, floats short.
std::string value_text(const toml::node& node) {
  if (auto f = node.value_exact<double>()) return float_text(*f);
  return toml_text(node);
}

std::vector<std::int64_t> check_seeds(TableChecker& c, const toml::node& node) {
  std::vector<std::int64_t> seeds;
  const toml::array* arr = node.as_array();
  if (arr == nullptr || arr->empty()) {
    c.wrong(node, "bench.seeds", "a non-empty array of integers >= 0, like [0, 1, 2, 3, 4]");
    return seeds;
  }
  for (const auto& el : *arr) {
    auto v = el.value_exact<std::int64_t>();
    if (!v || *v < 0) {
      c.wrong(el, "bench.seeds", "an array of integers >= 0 (an element)");
    } else if (std::find(seeds.begin(), seeds.end(), *v) != seeds.end()) {
      c.error(el, "bench.seeds", "seed " + std::to_string(*v) + " is listed twice in 'bench.seeds'");
    } else {
      seeds.push_back(*v);
    }
  }
  return seeds;
}

// bench.target as a run.target override.
std::vector<std::string> check_target(TableChecker& c, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    c.wrong(node, "bench.target", "a table like { metric = \"val_accuracy\", value = 0.895 }");
    return {};
  }
  c.known_keys(*t, "bench.target", kTargetKeys, "bench.target");
  const toml::node* metric = c.required(*t, "bench.target", "metric", "\"val_accuracy\"");
  const toml::node* value = c.required(*t, "bench.target", "value", "0.895");
  std::string text = "{ ";
  if (metric)
    if (auto m = c.string(*metric, "bench.target.metric")) text += "metric = " + toml_string(*m);
  if (value) {
    if (value->is_number()) text += ", value = " + toml_text(*value);
    else c.wrong(*value, "bench.target.value", "a number");
  }
  if (const toml::node* mode = t->get("mode")) {
    auto m = c.string(*mode, "bench.target.mode");
    if (m && *m != "auto" && *m != "max" && *m != "min")
      c.error(*mode, "bench.target.mode", "'bench.target.mode' must be one of auto, max, min, got " + toml_text(*mode));
    else if (m)
      text += ", mode = " + toml_string(*m);
  }
  if (const toml::node* stop = t->get("stop")) {
    if (stop->is_boolean()) text += std::string(", stop = ") + (stop->as_boolean()->get() ? "true" : "false");
    else c.wrong(*stop, "bench.target.stop", "true or false");
  }
  if (const toml::node* min_steps = t->get("min_steps"))
    if (auto n = c.integer(*min_steps, "bench.target.min_steps", 0)) text += ", min_steps = " + std::to_string(*n);
  return {"run.target=" + text + " }"};
}

// One override "key.path=value" of a variant, checked for its form and for keys the bench
// owns; `at` (a node or a key) gives the position.
template <class Position>
void check_override(TableChecker& c, const Position& at, const std::string& dotted, const std::string& variant,
                    const std::string& given) {
  auto eq = given.find('=');
  std::string key = eq == std::string::npos ? "" : given.substr(0, eq);
  if (key.empty()) {
    c.error(at, dotted, "variant '" + variant + "': override '" + given + "' is not of the form key.path=value (e.g. dynamics.plugin=\"linear\")");
    return;
  }
  for (const auto& [owned, by] : kBenchOwnedKeys) {
    if (key == owned || key.rfind(owned + ".", 0) == 0 || owned.rfind(key + ".", 0) == 0)
      c.error(at, dotted, "variant '" + variant + "': '" + key + "' cannot be set by a variant: " + owned +
                              " is set by " + by + " for every run alike");
  }
}

// [variant.set]: nested tables become dotted keys ("optimizer.lr" = 3e-3 or optimizer.lr = 3e-3).
void flatten_set(TableChecker& c, const toml::table& table, const std::string& prefix, const std::string& variant,
                 std::vector<std::string>& out) {
  for (const auto& [key, node] : table) {
    std::string dotted = prefix + std::string(key.str());
    if (const toml::table* sub = node.as_table()) {
      flatten_set(c, *sub, dotted + ".", variant, out);
      continue;
    }
    std::string given = dotted + "=" + value_text(node);
    check_override(c, node, "variant.set." + dotted, variant, given);
    out.push_back(given);
  }
}

// One key of a [[variant]] grid: its dotted path and its values (as TOML text, and as
// they read in a variant's name), in the order of the file.
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
  std::vector<std::string> labels;
  std::vector<bool> named_by_value;  // a string value names itself ("linear"); others need the key
  std::pair<std::uint32_t, std::uint32_t> at;  // line, column: toml++ tables do not keep the file's order
};

// A grid value as it reads in a variant's name: strings bare, other values as TOML,
// anything but letters, digits, '_', '-' and '.' as '_' (a name is a directory name).
std::string name_label(const toml::node& node) {
  std::string text = node.is_string() ? *node.value_exact<std::string>() : value_text(node);
  for (char& ch : text)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.')) ch = '_';
  return text;
}

// grid = { "optimizer.lr" = [1e-3, 3e-3], phase = { warmup_steps = [10, 20] } }: nested
// tables become dotted keys, as in [variant.set].
void flatten_grid(TableChecker& c, const toml::table& table, const std::string& prefix, const std::string& variant,
                  std::vector<GridAxis>& out) {
  for (const auto& [key, node] : table) {
    std::string dotted = prefix + std::string(key.str());
    if (const toml::table* sub = node.as_table()) {
      flatten_grid(c, *sub, dotted + ".", variant, out);
      continue;
    }
    const toml::array* values = node.as_array();
    if (values == nullptr || values->empty()) {
      c.wrong(node, "variant.grid." + dotted, "a non-empty array of the values to try, like [1e-3, 3e-3]");
      continue;
    }
    check_override(c, node, "variant.grid." + dotted, variant, dotted + "=[]");
    GridAxis axis;
    axis.key = dotted;
    axis.at = {node.source().begin.line, node.source().begin.column};
    for (const auto& v : *values) {
      axis.values.push_back(value_text(v));
      axis.labels.push_back(name_label(v));
      axis.named_by_value.push_back(v.is_string());
    }
    out.push_back(std::move(axis));
  }
}

// One variant per combination of the grid's values (the first key varies slowest), named
// <name>-<key><value>-...: each key's last part (its whole path when two keys share it)
// and the value, e.g. adamw-lr0.001-weight_decay0.01; a string value stands alone
// (hybrid-linear).
std::vector<BenchVariant> expand_grid(TableChecker& c, const toml::node& grid_node, const BenchVariant& v) {
  std::vector<GridAxis> axes;
  flatten_grid(c, *grid_node.as_table(), "", v.name, axes);
  if (axes.empty()) {
    c.wrong(grid_node, "variant.grid", "a table of key.path = [values...] with at least one key");
    return {};
  }
  std::sort(axes.begin(), axes.end(), [](const GridAxis& a, const GridAxis& b) { return a.at < b.at; });
  std::vector<std::string> last_parts, short_keys;
  for (const auto& a : axes) last_parts.push_back(a.key.substr(a.key.rfind('.') == std::string::npos ? 0 : a.key.rfind('.') + 1));
  for (std::size_t i = 0; i < axes.size(); ++i)
    short_keys.push_back(std::count(last_parts.begin(), last_parts.end(), last_parts[i]) > 1 ? axes[i].key : last_parts[i]);
  std::size_t count = 1;
  for (const auto& a : axes) count = std::min(count * a.values.size(), kMaxGridVariants + 1);
  if (count > kMaxGridVariants) {
    c.error(grid_node, "variant.grid", "variant '" + v.name + "': the grid makes more than " +
                                           std::to_string(kMaxGridVariants) + " variants");
    return {};
  }
  std::vector<BenchVariant> out;
  std::vector<std::size_t> index(axes.size(), 0);
  for (std::size_t n = 0; n < count; ++n) {
    BenchVariant e = v;
    for (std::size_t i = 0; i < axes.size(); ++i) {
      e.name += "-" + (axes[i].named_by_value[index[i]] ? "" : short_keys[i]) + axes[i].labels[index[i]];
      e.overrides.push_back(axes[i].key + "=" + axes[i].values[index[i]]);
    }
    out.push_back(std::move(e));
    for (std::size_t i = axes.size(); i-- > 0;) {  // odometer: the last key turns fastest
      if (++index[i] < axes[i].values.size()) break;
      index[i] = 0;
    }
  }
  return out;
}

// A [[variant]], its grid expanded (one variant, or one per combination).
std::vector<BenchVariant> check_variant(TableChecker& c, const Manifest& m, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    c.wrong(node, "variant", "a table ([[variant]])");
    return {};
  }
  c.known_keys(*t, "[[variant]]", kVariantKeys, "variant");
  BenchVariant v;
  v.where = m.where(t->source(), "variant");
  const toml::node* name = c.required(*t, "[[variant]]", "name", "\"<variant name>\"");
  if (name == nullptr) return {};
  auto n = c.name(*name, "variant.name");
  if (!n) return {};
  v.name = *n;
  if (const toml::node* o = t->get("overrides")) {
    const toml::array* arr = o->as_array();
    if (arr == nullptr) c.wrong(*o, "variant.overrides", "an array of strings like [\"dynamics.plugin=\\\"linear\\\"\"]");
    for (std::size_t i = 0; arr && i < arr->size(); ++i) {
      const toml::node& el = *arr->get(i);
      if (auto s = c.string(el, "variant.overrides")) {
        check_override(c, el, "variant.overrides", v.name, *s);
        v.overrides.push_back(*s);
      }
    }
  }
  if (const toml::node* tm = t->get("target_metric")) {
    // The same target on another name of the metric: "avg.val_accuracy" for a variant
    // that evaluates only its averaged weights ([averaging] evaluate = "average").
    if (auto metric = c.string(*tm, "variant.target_metric")) v.target_metric = *metric;
  }
  if (const toml::node* s = t->get("set")) {
    if (const toml::table* set = s->as_table()) flatten_set(c, *set, "", v.name, v.overrides);
    else c.wrong(*s, "variant.set", "a table of key.path = value ([variant.set])");
  }
  if (const toml::node* g = t->get("grid")) {
    if (g->is_table()) return expand_grid(c, *g, v);
    c.wrong(*g, "variant.grid", "a table of key.path = [values...], like { \"optimizer.lr\" = [1e-3, 3e-3] }");
    return {};
  }
  return {v};
}

}  // namespace

bool is_bench_manifest(const std::string& path) {
  try {
    toml::table t = toml::parse_file(path);
    return t.contains("bench");
  } catch (const toml::parse_error&) {
    return false;
  }
}

BenchManifest load_bench_manifest(const std::string& path, const std::vector<std::string>& overrides) {
  SplitOverrides split = split_overrides(overrides);
  Manifest m = Manifest::load(path, split.bench);
  TableChecker c(m);
  const toml::table& root = m.table();
  c.known_keys(root, "the bench file", kTopLevel, "");

  BenchManifest b;
  b.path = path;
  b.run_overrides = split.run;
  b.name = fs::path(path).stem().string();
  const toml::node* bench_node = root.get("bench");
  const toml::table* bench = bench_node ? bench_node->as_table() : nullptr;
  if (bench_node && !bench) c.wrong(*bench_node, "bench", "a table ([bench])");
  if (bench_node == nullptr) c.error("missing section [bench] (with base, seeds and baseline)");

  std::optional<std::string> baseline;
  const toml::node* baseline_node = nullptr;
  std::optional<std::string> runs_dir;
  if (bench) {
    c.known_keys(*bench, "[bench]", kBenchKeys, "bench");
    if (const toml::node* n = bench->get("name"))
      if (auto v = c.name(*n, "bench.name")) b.name = *v;
    if (const toml::node* n = c.required(*bench, "[bench]", "base", "\"<run manifest, relative to this file>\"")) {
      if (auto v = c.string(*n, "bench.base")) {
        fs::path p(*v);
        if (p.is_relative()) p = fs::path(path).parent_path() / p;
        b.base = fs::absolute(p).lexically_normal().string();
        if (!fs::is_regular_file(b.base))
          c.error(*n, "bench.base", "'bench.base' names no file: " + b.base + " (the path is relative to " + path + ")");
      }
    }
    if (const toml::node* n = c.required(*bench, "[bench]", "seeds", "[0, 1, 2, 3, 4]")) b.seeds = check_seeds(c, *n);
    if ((baseline_node = c.required(*bench, "[bench]", "baseline", "\"<variant name>\""))) baseline = c.string(*baseline_node, "bench.baseline");
    if (const toml::node* n = bench->get("target")) b.target = check_target(c, *n);
    if (const toml::node* n = bench->get("budget")) b.budget = c.integer(*n, "bench.budget", 1);
    if (const toml::node* n = bench->get("runs_dir")) runs_dir = c.string(*n, "bench.runs_dir");
  }
  b.runs_dir = fs::absolute(runs_dir.value_or("runs/bench/" + b.name)).lexically_normal().string();

  const toml::node* variants = root.get("variant");
  const toml::array* arr = variants ? variants->as_array() : nullptr;
  if (variants && !arr) c.wrong(*variants, "variant", "an array of tables ([[variant]] sections)");
  if (variants == nullptr || (arr && arr->empty())) c.error("no variants: add [[variant]] sections, each with a name");
  for (std::size_t i = 0; arr && i < arr->size(); ++i) {
    for (auto& v : check_variant(c, m, *arr->get(i))) {
      auto same = std::find_if(b.variants.begin(), b.variants.end(), [&](const BenchVariant& o) { return o.name == v.name; });
      if (same != b.variants.end())
        c.error(*arr->get(i)->as_table()->get("name"), "variant.name",
                "variant name '" + v.name + "' is used twice (first at " + same->where + ")");
      else
        b.variants.push_back(std::move(v));
    }
  }

  if (baseline) {
    std::vector<std::string> names;
    for (const auto& v : b.variants) names.push_back(v.name);
    if (std::find(names.begin(), names.end(), *baseline) == names.end()) {
      std::string near = closest_name(*baseline, names);
      c.error(*baseline_node, "bench.baseline",
              "'bench.baseline' must name a variant, got \"" + *baseline + "\"" +
                  (near.empty() ? "" : "; did you mean \"" + near + "\"?") + " (variants: " + join(names, ", ") + ")");
    }
    b.baseline = *baseline;
  }

  c.throw_if_any("bench manifest");
  return b;
}

namespace {

// Whether `key` ("task.data_path") names a path option (OptionType::Path) of the run
// `resolved` describes: a plugin's, or the host's `task.init_from`.
bool is_path_key(const ResolvedManifest& resolved, const std::string& key) {
  const auto dot = key.find('.');
  if (dot == std::string::npos) return false;
  const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
  auto path_in = [&](const std::vector<OptionSpec>& specs) {
    return std::any_of(specs.begin(), specs.end(),
                       [&](const OptionSpec& s) { return s.name == name && s.type == OptionType::Path; });
  };
  for (const auto& [kind, choice] : resolved.plugins) {
    if (section != section_name(kind)) continue;
    if (kind == PluginKind::Task && path_in(task_host_option_specs())) return true;
    return choice.info && path_in(choice.info->options);
  }
  return false;
}

// A variant's key that names a path, with a relative path as its value: the path made
// absolute against the bench file's folder, as a path in a run manifest is made absolute
// against that manifest's. (The child `hpt run` would read a relative one against its
// working directory, as it reads every command-line override.) Other overrides: unchanged.
std::string anchored_override(const ResolvedManifest& resolved, const std::string& bench_path,
                              const std::string& given) {
  const auto eq = given.find('=');
  if (eq == std::string::npos || !is_path_key(resolved, given.substr(0, eq))) return given;
  toml::table holder;
  try {
    holder = toml::parse(std::string_view("v = " + given.substr(eq + 1)), std::string("override"));
  } catch (const toml::parse_error&) {
    return given;
  }
  const auto value = holder["v"].value<std::string>();
  if (!value || value->empty() || fs::path(*value).is_absolute()) return given;
  const fs::path anchored = fs::absolute(fs::path(bench_path).parent_path() / *value).lexically_normal();
  return given.substr(0, eq) + "=" + toml_string(anchored.string());
}

}  // namespace

std::vector<PlannedRun> plan_runs(const BenchManifest& bench) {
  if (!bench.run_overrides.empty()) {
    // A bad command-line run override fails once, not once per variant.
    try {
      Manifest m = Manifest::load(bench.base, bench.run_overrides);
      PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
      resolve(m, loader);
    } catch (const BadInput& e) {
      throw BadInput("the command line's run overrides do not apply to " + bench.base + ": " + e.what());
    }
  }
  std::vector<PlannedRun> runs;
  std::vector<std::string> errors;
  std::set<std::string> failed;  // report each variant once
  for (std::int64_t seed : bench.seeds) {
    for (const auto& v : bench.variants) {
      PlannedRun r;
      r.variant = v.name;
      r.seed = seed;
      r.name = v.name + "-s" + std::to_string(seed);
      r.run_dir = (fs::path(bench.runs_dir) / "runs" / r.name).string();
      r.overrides = bench.run_overrides;
      r.overrides.insert(r.overrides.end(), v.overrides.begin(), v.overrides.end());
      r.overrides.insert(r.overrides.end(), bench.target.begin(), bench.target.end());
      if (!v.target_metric.empty()) r.overrides.push_back("run.target.metric=" + toml_string(v.target_metric));
      if (bench.budget) r.overrides.push_back("run.max_steps=" + std::to_string(*bench.budget));
      r.overrides.push_back("run.seed=" + std::to_string(seed));
      r.overrides.push_back("run.name=" + toml_string(r.name));
      r.overrides.push_back("run.runs_dir=" + toml_string((fs::path(bench.runs_dir) / "runs").string()));
      if (failed.count(v.name)) continue;
      try {
        Manifest m = Manifest::load(bench.base, r.overrides);
        PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
        r.resolved = resolve(m, loader);
        // Paths a variant sets are relative to the bench file: anchor them and resolve again.
        const std::size_t first = bench.run_overrides.size();
        bool anchored = false;
        for (std::size_t i = first; i < first + v.overrides.size(); ++i) {
          std::string a = anchored_override(r.resolved, bench.path, r.overrides[i]);
          anchored = anchored || a != r.overrides[i];
          r.overrides[i] = std::move(a);
        }
        if (anchored) r.resolved = resolve(Manifest::load(bench.base, r.overrides), loader);
        if (!r.resolved.run.target)
          throw BadInput("no target: set bench.target = { metric = \"...\", value = ... } or run.target in " + bench.base);
      } catch (const BadInput& e) {
        failed.insert(v.name);
        errors.push_back(v.where + ": variant '" + v.name + "' (seed " + std::to_string(seed) + "): " + e.what());
        continue;
      }
      runs.push_back(std::move(r));
    }
  }
  if (!errors.empty()) {
    std::string head = errors.size() == 1 ? "" : std::to_string(errors.size()) + " variants do not resolve:\n  ";
    throw BadInput(head + join(errors, "\n  "));
  }
  return runs;
}

}  // namespace hpt::host
