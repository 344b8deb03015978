#include "bench/bench_manifest.hpp"

#include "config/message_text.hpp"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTopLevel = {"bench", "variant"};
const std::vector<std::string> kBenchKeys = {"name", "base", "seeds", "baseline", "target", "budget", "runs_dir"};
const std::vector<std::string> kTargetKeys = {"metric", "value", "mode", "stop", "min_steps"};
const std::vector<std::string> kVariantKeys = {"name", "overrides", "set"};

// Run keys the bench sets itself, so that every variant runs the same protocol.
const std::vector<std::pair<std::string, std::string>> kBenchOwnedKeys = {
    {"run.seed", "bench.seeds"},       {"run.name", "the bench (<variant>-s<seed>)"},
    {"run.runs_dir", "bench.runs_dir"}, {"run.resume", "the bench"},
    {"run.max_steps", "bench.budget"}, {"run.target", "bench.target"},
};

// The node as TOML text, e.g. "linear" or { metric = "val_loss" }.
std::string toml_text(const toml::node& node) {
  std::ostringstream os;
  node.visit([&](auto&& v) { os << toml::toml_formatter(v, toml::toml_formatter::default_flags & ~toml::format_flags::allow_literal_strings); });
  return os.str();
}

std::string toml_string(const std::string& s) { return toml_text(toml::value<std::string>(s)); }

bool usable_as_directory_name(const std::string& s) {
  if (s.empty() || s.front() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
}

// Collects every problem of a bench file, each with its position.
class Checker {
 public:
  explicit Checker(const Manifest& m) : m_(m) {}

  template <class Node>
  void error(const Node& at, const std::string& dotted, const std::string& text) {
    errors_.push_back(m_.where(at.source(), dotted) + ": " + text);
  }
  void error(const std::string& text) { errors_.push_back(m_.path() + ": " + text); }
  const std::vector<std::string>& errors() const { return errors_; }

  // Reports every key of `table` not in `allowed`, with the closest allowed name.
  void known_keys(const toml::table& table, const std::string& section, const std::vector<std::string>& allowed) {
    for (const auto& [key, node] : table) {
      std::string k(key.str());
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      std::string near = closest_name(k, allowed);
      error(key, section + "." + k,
            "unknown key '" + k + "' in " + section + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                " (" + section + " accepts: " + join(allowed, ", ") + ")");
    }
  }

  const toml::node* required(const toml::table& table, const std::string& section, const std::string& key,
                             const std::string& example) {
    const toml::node* node = table.get(key);
    if (node == nullptr) error(table, section, section + " needs '" + key + " = " + example + "'");
    return node;
  }

  std::optional<std::string> string(const toml::node& node, const std::string& dotted) {
    if (auto v = node.value_exact<std::string>()) return *v;
    wrong(node, dotted, "a string");
    return std::nullopt;
  }

  // A file or directory name: letters, digits, '_', '-', '.'.
  std::optional<std::string> name(const toml::node& node, const std::string& dotted) {
    auto v = string(node, dotted);
    if (v && !usable_as_directory_name(*v)) {
      error(node, dotted, "'" + dotted + "' must be a name made of letters, digits, '_', '-' and '.' (not starting with '.'), got " + toml_text(node));
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::int64_t> integer(const toml::node& node, const std::string& dotted, std::int64_t min) {
    auto v = node.value_exact<std::int64_t>();
    if (!v || *v < min) {
      wrong(node, dotted, "an integer >= " + std::to_string(min));
      return std::nullopt;
    }
    return v;
  }

  void wrong(const toml::node& node, const std::string& dotted, const std::string& expected) {
    error(node, dotted, "'" + dotted + "' must be " + expected + ", got " + toml_type_name(node) + " " + toml_text(node));
  }

 private:
  const Manifest& m_;
  std::vector<std::string> errors_;
};

std::vector<std::int64_t> check_seeds(Checker& c, const toml::node& node) {
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
std::vector<std::string> check_target(Checker& c, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    c.wrong(node, "bench.target", "a table like { metric = \"val_accuracy\", value = 0.895 }");
    return {};
  }
  c.known_keys(*t, "bench.target", kTargetKeys);
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
void check_override(Checker& c, const Position& at, const std::string& dotted, const std::string& variant,
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
void flatten_set(Checker& c, const toml::table& table, const std::string& prefix, const std::string& variant,
                 std::vector<std::string>& out) {
  for (const auto& [key, node] : table) {
    std::string dotted = prefix + std::string(key.str());
    if (const toml::table* sub = node.as_table()) {
      flatten_set(c, *sub, dotted + ".", variant, out);
      continue;
    }
    std::string given = dotted + "=" + toml_text(node);
    check_override(c, node, "variant.set." + dotted, variant, given);
    out.push_back(given);
  }
}

std::optional<BenchVariant> check_variant(Checker& c, const Manifest& m, const toml::node& node) {
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    c.wrong(node, "variant", "a table ([[variant]])");
    return std::nullopt;
  }
  c.known_keys(*t, "[[variant]]", kVariantKeys);
  BenchVariant v;
  v.where = m.where(t->source(), "variant");
  const toml::node* name = c.required(*t, "[[variant]]", "name", "\"<variant name>\"");
  if (name == nullptr) return std::nullopt;
  auto n = c.name(*name, "variant.name");
  if (!n) return std::nullopt;
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
  if (const toml::node* s = t->get("set")) {
    if (const toml::table* set = s->as_table()) flatten_set(c, *set, "", v.name, v.overrides);
    else c.wrong(*s, "variant.set", "a table of key.path = value ([variant.set])");
  }
  return v;
}

}  // namespace

BenchManifest load_bench_manifest(const std::string& path) {
  Manifest m = Manifest::load(path);
  Checker c(m);
  const toml::table& root = m.table();
  c.known_keys(root, "the bench file", kTopLevel);

  BenchManifest b;
  b.path = path;
  b.name = fs::path(path).stem().string();
  const toml::node* bench_node = root.get("bench");
  const toml::table* bench = bench_node ? bench_node->as_table() : nullptr;
  if (bench_node && !bench) c.wrong(*bench_node, "bench", "a table ([bench])");
  if (bench_node == nullptr) c.error("missing section [bench] (with base, seeds and baseline)");

  std::optional<std::string> baseline;
  const toml::node* baseline_node = nullptr;
  std::optional<std::string> runs_dir;
  if (bench) {
    c.known_keys(*bench, "[bench]", kBenchKeys);
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
    auto v = check_variant(c, m, *arr->get(i));
    if (!v) continue;
    auto same = std::find_if(b.variants.begin(), b.variants.end(), [&](const BenchVariant& o) { return o.name == v->name; });
    if (same != b.variants.end())
      c.error(*arr->get(i)->as_table()->get("name"), "variant.name",
              "variant name '" + v->name + "' is used twice (first at " + same->where + ")");
    else
      b.variants.push_back(std::move(*v));
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

  if (!c.errors().empty()) {
    std::string head = c.errors().size() == 1 ? "" : std::to_string(c.errors().size()) + " problems in the bench manifest:\n  ";
    throw BadInput(head + join(c.errors(), "\n  "));
  }
  return b;
}

std::vector<PlannedRun> plan_runs(const BenchManifest& bench) {
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
      r.overrides = v.overrides;
      r.overrides.insert(r.overrides.end(), bench.target.begin(), bench.target.end());
      if (bench.budget) r.overrides.push_back("run.max_steps=" + std::to_string(*bench.budget));
      r.overrides.push_back("run.seed=" + std::to_string(seed));
      r.overrides.push_back("run.name=" + toml_string(r.name));
      r.overrides.push_back("run.runs_dir=" + toml_string((fs::path(bench.runs_dir) / "runs").string()));
      if (failed.count(v.name)) continue;
      try {
        Manifest m = Manifest::load(bench.base, r.overrides);
        PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
        r.resolved = resolve(m, loader);
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
