#include "tune/tune_manifest.hpp"

#include <algorithm>
#include <tuple>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <boost/json.hpp>

#include "config/message_text.hpp"
#include "config/table_checker.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTopLevel = {"tune", "space"};
const std::vector<std::string> kTuneKeys = {"name",   "base",   "objective", "sampler", "pruner",  "trials",
                                            "workers", "budget", "seed",      "runs_dir", "storage", "overrides"};
const std::vector<std::string> kObjectiveKeys = {"metric", "direction", "time_to_target"};
const std::vector<std::string> kPrunerKeys = {"name", "startup_trials", "warmup_steps"};
const std::vector<std::string> kSamplers = {"tpe", "random", "grid", "cmaes"};
const std::vector<std::string> kPruners = {"median", "hyperband", "none"};
const std::vector<std::string> kKinds = {"log_uniform", "uniform", "int", "choice"};
const std::vector<std::string> kParamKeys = {"log_uniform", "uniform", "int", "choice", "step", "log", "when"};
// Run keys each trial sets itself (its run directory is <runs_dir>/trials/<number>).
const std::vector<std::string> kTuneOwnedKeys = {"run.name", "run.runs_dir", "run.resume"};

// A float as TOML in the fewest digits that read back to the same double (as the bench
// manifest writes them): 0.03, not 0.029999999999999999.
std::string float_text(double v) {
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;
  if (text.find_first_of(".en") == std::string::npos) text += ".0";  // stays a float
  return text;
}

std::string number_text(double v, bool integer) {
  return integer ? std::to_string(static_cast<std::int64_t>(v)) : float_text(v);
}

TuneObjective check_objective(TableChecker& c, const toml::node& node) {
  TuneObjective o;
  const toml::table* t = node.as_table();
  const std::string example = "{ metric = \"val_loss\", direction = \"minimize\" } or { time_to_target = true }";
  if (t == nullptr) {
    c.wrong(node, "tune.objective", "a table like " + example);
    return o;
  }
  c.known_keys(*t, "tune.objective", kObjectiveKeys, "tune.objective");
  if (const toml::node* ttt = t->get("time_to_target")) {
    auto v = c.boolean(*ttt, "tune.objective.time_to_target");
    o.time_to_target = v.value_or(false);
    if (v && !*v) c.error(*ttt, "tune.objective.time_to_target", "'tune.objective.time_to_target' can only be true; for a metric give { metric = \"val_loss\", direction = \"minimize\" }");
    for (const char* k : {"metric", "direction"})
      if (const toml::node* n = t->get(k))
        c.error(*n, std::string("tune.objective.") + k,
                std::string("'tune.objective.") + k + "' does not go with time_to_target: the time to the base's run.target is minimised");
    return o;
  }
  if (const toml::node* m = c.required(*t, "tune.objective", "metric", "\"val_loss\"")) o.metric = c.string(*m, "tune.objective.metric").value_or("");
  if (const toml::node* d = c.required(*t, "tune.objective", "direction", "\"minimize\" (or \"maximize\")"))
    if (auto v = c.one_of(*d, "tune.objective.direction", {"minimize", "maximize"})) o.maximize = *v == "maximize";
  o.label = o.metric;
  return o;
}

TunePruner check_pruner(TableChecker& c, const toml::node& node) {
  TunePruner p;
  if (node.is_string()) {
    if (auto v = c.one_of(node, "tune.pruner", kPruners)) p.name = *v;
    return p;
  }
  const toml::table* t = node.as_table();
  if (t == nullptr) {
    c.wrong(node, "tune.pruner", "one of \"median\", \"hyperband\", \"none\", or { name = \"median\", startup_trials = 5, warmup_steps = 0 }");
    return p;
  }
  c.known_keys(*t, "tune.pruner", kPrunerKeys, "tune.pruner");
  if (const toml::node* n = c.required(*t, "tune.pruner", "name", "\"median\""))
    if (auto v = c.one_of(*n, "tune.pruner.name", kPruners)) p.name = *v;
  for (const char* k : {"startup_trials", "warmup_steps"}) {
    const toml::node* n = t->get(k);
    if (n == nullptr) continue;
    if (p.name != "median") {
      c.error(*n, std::string("tune.pruner.") + k, std::string("'tune.pruner.") + k + "' is an option of the median pruner only");
      continue;
    }
    auto v = c.integer(*n, std::string("tune.pruner.") + k, 0);
    if (v) (std::string(k) == "startup_trials" ? p.startup_trials : p.warmup_steps) = *v;
  }
  return p;
}

// A choice value (or a `when` value): a string, integer, float or boolean, as TOML and JSON.
std::optional<TuneParam::Choice> scalar(TableChecker& c, const toml::node& node, const std::string& dotted) {
  TuneParam::Choice ch;
  if (auto s = node.value_exact<std::string>()) {
    ch.toml = toml_text(node);
    ch.json = boost::json::serialize(boost::json::value(*s));
  } else if (auto i = node.value_exact<std::int64_t>()) {
    ch.toml = ch.json = std::to_string(*i);
  } else if (auto f = node.value_exact<double>()) {
    if (!std::isfinite(*f)) {
      c.wrong(node, dotted, "a finite number");
      return std::nullopt;
    }
    ch.toml = ch.json = float_text(*f);
  } else if (auto b = node.value_exact<bool>()) {
    ch.toml = ch.json = *b ? "true" : "false";
  } else {
    c.wrong(node, dotted, "a string, integer, float or boolean (what Optuna can choose between)");
    return std::nullopt;
  }
  return ch;
}

// [low, high] of a range: two numbers (integers for `int`), low < high.
std::optional<std::pair<double, double>> range(TableChecker& c, const toml::node& node, const std::string& dotted,
                                               bool integer) {
  const toml::array* a = node.as_array();
  const std::string example = integer ? "[16, 256]" : "[1e-4, 1e-1]";
  if (a == nullptr || a->size() != 2) {
    c.wrong(node, dotted, "[low, high], like " + example);
    return std::nullopt;
  }
  double v[2];
  for (std::size_t i = 0; i < 2; ++i) {
    const toml::node& el = *a->get(i);
    if (integer ? !el.is_integer() : !el.is_number()) {
      c.wrong(node, dotted, std::string("[low, high] of ") + (integer ? "integers" : "numbers") + ", like " + example);
      return std::nullopt;
    }
    v[i] = integer ? static_cast<double>(*el.value_exact<std::int64_t>()) : *el.value<double>();
    if (!std::isfinite(v[i])) {
      c.wrong(node, dotted, "[low, high] of finite numbers");
      return std::nullopt;
    }
  }
  if (!(v[0] < v[1])) {
    c.error(node, dotted, "'" + dotted + "' must have low < high, got " + toml_text(node));
    return std::nullopt;
  }
  return std::make_pair(v[0], v[1]);
}

std::optional<TuneParam> check_param(TableChecker& c, const Manifest& m, const std::string& name, const toml::table& t) {
  const std::string dotted = "space.\"" + name + "\"";
  TuneParam p;
  p.name = name;
  p.where = m.where(t.source(), dotted);
  c.known_keys(t, "space key '" + name + "'", kParamKeys, dotted);
  std::vector<std::string> kinds;
  for (const auto& k : kKinds)
    if (t.contains(k)) kinds.push_back(k);
  if (kinds.size() != 1) {
    c.error(t, dotted, "space key '" + name + "' needs exactly one of " + join(kKinds, ", ") +
                           " (e.g. { log_uniform = [1e-4, 1e-1] }), got " +
                           (kinds.empty() ? std::string("none") : join(kinds, " and ")));
    return std::nullopt;
  }
  const std::string kind = kinds.front();
  const toml::node& value = *t.get(kind);
  const toml::node* step = t.get("step");
  const toml::node* log = t.get("log");
  auto not_with = [&](const toml::node* n, const char* key, const std::string& why) {
    if (n) c.error(*n, dotted + "." + key, "'" + std::string(key) + "' does not go with " + why);
  };
  bool ok = true;
  if (kind == "choice") {
    p.type = TuneParam::Type::Choice;
    not_with(step, "step", "choice");
    not_with(log, "log", "choice");
    const toml::array* a = value.as_array();
    if (a == nullptr || a->empty()) {
      c.wrong(value, dotted + ".choice", "a non-empty array of the values to choose from, like [64, 128, 256]");
      return std::nullopt;
    }
    for (const auto& el : *a) {
      auto ch = scalar(c, el, dotted + ".choice");
      if (!ch) return std::nullopt;
      for (const auto& seen : p.choices)
        if (seen.json == ch->json) {
          c.error(el, dotted + ".choice", "value " + ch->toml + " is listed twice in '" + dotted + ".choice'");
          return std::nullopt;
        }
      p.choices.push_back(*ch);
    }
  } else {
    const bool integer = kind == "int";
    p.type = integer ? TuneParam::Type::Int : TuneParam::Type::Float;
    auto r = range(c, value, dotted + "." + kind, integer);
    if (!r) return std::nullopt;
    std::tie(p.low, p.high) = *r;
    if (kind == "log_uniform") {
      p.log = true;
      not_with(step, "step", "log_uniform");
      not_with(log, "log", "log_uniform (it is log already)");
    } else if (log) {
      ok = c.boolean(*log, dotted + ".log").has_value();
      p.log = log->value_exact<bool>().value_or(false);
    }
    if (p.log && p.low <= 0) {
      c.error(value, dotted + "." + kind, "'" + dotted + "' samples on a log scale, so low must be > 0, got " + toml_text(value));
      ok = false;
    }
    if (step) {
      if (p.log) {
        c.error(*step, dotted + ".step", "'step' does not go with a log scale (Optuna samples one or the other)");
        ok = false;
      } else if (integer ? !step->is_integer() || *step->value<std::int64_t>() < 1
                         : !step->is_number() || !(*step->value<double>() > 0)) {
        c.wrong(*step, dotted + ".step", integer ? "an integer >= 1" : "a number > 0");
        ok = false;
      } else {
        p.step = *step->value<double>();
      }
    }
  }
  if (const toml::node* w = t.get("when")) {
    const toml::table* wt = w->as_table();
    if (wt == nullptr || wt->empty()) {
      c.wrong(*w, dotted + ".when", "a table of other space keys and the choice that makes this one apply, like { \"optimizer.schedule\" = \"warmup_cosine\" }");
      return std::nullopt;
    }
    for (const auto& [k, v] : *wt) {
      auto ch = scalar(c, v, dotted + ".when");
      if (!ch) return std::nullopt;
      p.when.emplace_back(std::string(k.str()), *ch);
    }
  }
  if (!ok) return std::nullopt;
  return p;
}

// [space]: "optimizer.lr" = { ... } or optimizer = { lr = { ... } } (a table without a
// kind key is a level of the key's path).
void collect_space(TableChecker& c, const Manifest& m, const toml::table& table, const std::string& prefix,
                   std::vector<std::pair<toml::source_position, TuneParam>>& out) {
  for (const auto& [key, node] : table) {
    std::string name = prefix + std::string(key.str());
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      c.wrong(node, "space.\"" + name + "\"", "a table like { log_uniform = [1e-4, 1e-1] }, { uniform = [0.0, 0.1] }, { int = [16, 256] } or { choice = [64, 128] }");
      continue;
    }
    bool spec = std::any_of(kParamKeys.begin(), kParamKeys.end(), [&](const std::string& k) { return t->contains(k); });
    if (!spec) {
      collect_space(c, m, *t, name + ".", out);
      continue;
    }
    for (const auto& owned : kTuneOwnedKeys)
      if (name == owned || name.rfind(owned + ".", 0) == 0 || owned.rfind(name + ".", 0) == 0)
        c.error(node, "space.\"" + name + "\"", "'" + name + "' cannot be tuned: each trial sets it (its run directory is <runs_dir>/trials/<number>)");
    if (auto p = check_param(c, m, name, *t)) out.emplace_back(t->source().begin, std::move(*p));
  }
}

// The parameters in the file's order, each after the parameters its `when` names (which
// must be choice parameters with that value among their choices).
std::vector<TuneParam> order_params(TableChecker& c, std::vector<std::pair<toml::source_position, TuneParam>> found) {
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.line, a.first.column) < std::tie(b.first.line, b.first.column);
  });
  std::vector<TuneParam> params;
  for (auto& f : found) params.push_back(std::move(f.second));
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  bool bad = false;
  for (const auto& p : params) {
    for (const auto& [key, value] : p.when) {
      auto it = std::find_if(params.begin(), params.end(), [&](const TuneParam& o) { return o.name == key; });
      std::string problem;
      if (it == params.end()) {
        std::string near = closest_name(key, names);
        problem = "'" + key + "' is not a key of [space]" + (near.empty() ? "" : "; did you mean '" + near + "'?");
      } else if (it->type != TuneParam::Type::Choice) {
        problem = "'" + key + "' is not a choice parameter (a condition names a choice and one of its values)";
      } else if (std::none_of(it->choices.begin(), it->choices.end(), [&](const auto& ch) { return ch.json == value.json; })) {
        std::vector<std::string> texts;
        for (const auto& ch : it->choices) texts.push_back(ch.toml);
        problem = value.toml + " is not one of the choices of '" + key + "' (" + join(texts, ", ") + ")";
      } else if (key == p.name) {
        problem = "a parameter cannot depend on itself";
      }
      if (!problem.empty()) {
        c.error(p.where + ": space key '" + p.name + "': when: " + problem);
        bad = true;
      }
    }
  }
  if (bad) return params;
  std::vector<TuneParam> ordered;
  std::vector<bool> placed(params.size(), false);
  // Each time, the first parameter in the file's order whose conditions are all placed.
  for (bool progress = true; progress && ordered.size() < params.size();) {
    progress = false;
    for (std::size_t i = 0; i < params.size() && !progress; ++i) {
      if (placed[i]) continue;
      bool ready = std::all_of(params[i].when.begin(), params[i].when.end(), [&](const auto& w) {
        return std::any_of(ordered.begin(), ordered.end(), [&](const TuneParam& o) { return o.name == w.first; });
      });
      if (!ready) continue;
      ordered.push_back(params[i]);
      placed[i] = progress = true;
    }
  }
  if (ordered.size() < params.size()) {
    for (std::size_t i = 0; i < params.size(); ++i)
      if (!placed[i]) c.error(params[i].where + ": space key '" + params[i].name + "': its `when` conditions go round in a circle");
    return params;
  }
  return ordered;
}

// Every bound and every choice of each parameter, applied to the base as an override
// (with the conditions that make it apply), must give a manifest `hpt validate` accepts.
void check_against_base(TableChecker& c, const TuneManifest& t) {
  Manifest base = Manifest::load(t.base, t.run_overrides);
  PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(base)));
  for (const auto& p : t.params) {
    std::vector<std::string> values;
    if (p.type == TuneParam::Type::Choice) {
      for (const auto& ch : p.choices) values.push_back(ch.toml);
    } else {
      values = {number_text(p.low, p.type == TuneParam::Type::Int), number_text(p.high, p.type == TuneParam::Type::Int)};
    }
    for (const auto& v : values) {
      std::vector<std::string> overrides = t.run_overrides;
      for (const auto& [key, value] : p.when) overrides.push_back(key + "=" + value.toml);
      overrides.push_back(p.name + "=" + v);
      try {
        resolve(Manifest::load(t.base, overrides), loader);
      } catch (const BadInput& e) {
        c.error(p.where + ": space key '" + p.name + "' does not fit the base manifest " + t.base + ": with " + p.name +
                " = " + v + ": " + e.what());
        break;
      }
    }
  }
}

}  // namespace

bool is_tune_manifest(const std::string& path) {
  try {
    toml::table t = toml::parse_file(path);
    return t.contains("tune");
  } catch (const toml::parse_error&) {
    return false;
  }
}

TuneManifest load_tune_manifest(const std::string& path, const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw BadInput("override '" + o + "' is not of the form key.path=value (e.g. tune.trials=50)");
  }
  Manifest m = Manifest::load(path, overrides);
  TableChecker c(m);
  const toml::table& root = m.table();
  c.known_keys(root, "the tune file", kTopLevel, "");
  TuneManifest t;
  t.path = path;
  t.name = fs::path(path).stem().string();
  const toml::node* tune_node = root.get("tune");
  const toml::table* tune = tune_node ? tune_node->as_table() : nullptr;
  if (tune_node && !tune) c.wrong(*tune_node, "tune", "a table ([tune])");
  if (tune_node == nullptr) c.error("missing section [tune] (with base, objective and trials)");
  std::optional<std::string> runs_dir, storage;
  const toml::node* objective_node = nullptr;
  const toml::node* base_node = nullptr;
  if (tune) {
    c.known_keys(*tune, "[tune]", kTuneKeys, "tune");
    if (const toml::node* n = tune->get("name"))
      if (auto v = c.name(*n, "tune.name")) t.name = *v;
    if ((base_node = c.required(*tune, "[tune]", "base", "\"<run manifest, relative to this file>\""))) {
      if (auto v = c.string(*base_node, "tune.base")) {
        fs::path p(*v);
        if (p.is_relative()) p = fs::path(path).parent_path() / p;
        t.base = fs::absolute(p).lexically_normal().string();
        if (!fs::is_regular_file(t.base)) {
          c.error(*base_node, "tune.base", "'tune.base' names no file: " + t.base + " (the path is relative to " + path + ")");
          t.base.clear();
        }
      }
    }
    if ((objective_node = c.required(*tune, "[tune]", "objective", "{ metric = \"val_loss\", direction = \"minimize\" }")))
      t.objective = check_objective(c, *objective_node);
    if (const toml::node* n = tune->get("sampler"))
      if (auto v = c.one_of(*n, "tune.sampler", kSamplers)) t.sampler = *v;
    if (const toml::node* n = tune->get("pruner")) t.pruner = check_pruner(c, *n);
    if (const toml::node* n = c.required(*tune, "[tune]", "trials", "30")) t.trials = c.integer(*n, "tune.trials", 1).value_or(0);
    if (const toml::node* n = tune->get("workers")) t.workers = c.integer(*n, "tune.workers", 1).value_or(1);
    if (const toml::node* n = tune->get("budget")) t.budget = c.integer(*n, "tune.budget", 1);
    if (const toml::node* n = tune->get("seed")) t.seed = c.integer(*n, "tune.seed", 0);
    if (const toml::node* n = tune->get("runs_dir")) runs_dir = c.string(*n, "tune.runs_dir");
    if (const toml::node* n = tune->get("storage")) {
      storage = c.string(*n, "tune.storage");
      if (storage && storage->find("://") == std::string::npos) {
        c.error(*n, "tune.storage", "'tune.storage' must be an Optuna storage URL like \"sqlite:///path/study.db\" or \"postgresql://user@host/db\", got " + toml_text(*n));
        storage.reset();
      }
    }
  }
  t.runs_dir = fs::absolute(runs_dir.value_or("runs/tune/" + t.name)).lexically_normal().string();
  t.local_storage = !storage || storage->rfind("sqlite:", 0) == 0;
  t.storage = storage.value_or("sqlite:///" + (fs::path(t.runs_dir) / "study.db").string());
  if (t.budget) t.run_overrides.push_back("run.max_steps=" + std::to_string(*t.budget));
  if (const toml::node* n = tune ? tune->get("overrides") : nullptr) {
    const toml::array* a = n->as_array();
    if (a == nullptr) c.wrong(*n, "tune.overrides", "an array of strings like ['backend.threads=1', 'run.eval_every=250']");
    for (std::size_t i = 0; a && i < a->size(); ++i) {
      auto s = c.string(*a->get(i), "tune.overrides");
      if (!s) continue;
      const auto eq = s->find('=');
      const std::string key = eq == std::string::npos ? "" : s->substr(0, eq);
      if (key.empty()) {
        c.error(*a->get(i), "tune.overrides", "override '" + *s + "' is not of the form key.path=value (e.g. backend.threads=1)");
        continue;
      }
      for (const auto& owned : kTuneOwnedKeys)
        if (key == owned || key.rfind(owned + ".", 0) == 0 || owned.rfind(key + ".", 0) == 0)
          c.error(*a->get(i), "tune.overrides", "'" + key + "' cannot be overridden in a tune: each trial sets it");
      t.run_overrides.push_back(*s);
    }
  }

  const toml::node* space_node = root.get("space");
  const toml::table* space = space_node ? space_node->as_table() : nullptr;
  if (space_node && !space) c.wrong(*space_node, "space", "a table ([space])");
  if (space_node == nullptr || (space && space->empty()))
    c.error("no search space: add a [space] section, e.g. \"optimizer.lr\" = { log_uniform = [1e-4, 1e-1] }");
  if (space) {
    std::vector<std::pair<toml::source_position, TuneParam>> found;
    collect_space(c, m, *space, "", found);
    t.params = order_params(c, std::move(found));
  }
  if (t.sampler == "grid")
    for (const auto& p : t.params)
      if (p.type == TuneParam::Type::Float)
        c.error(p.where + ": space key '" + p.name + "': the grid sampler needs choice or int parameters; give { choice = [...] } for a grid over values");

  // Against the base, once the tune file itself is sound.
  if (c.errors().empty() && !t.base.empty()) {
    try {
      Manifest base = Manifest::load(t.base, t.run_overrides);
      PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(base)));
      ResolvedManifest resolved = resolve(base, loader);
      if (t.objective.time_to_target) {
        if (!resolved.run.target) {
          c.error(*objective_node, "tune.objective", "time_to_target needs a target: the base manifest " + t.base +
                                                         " has no run.target = { metric = \"...\", value = ... }");
        } else {
          const MetricGoal& g = *resolved.run.target;
          t.objective.metric = g.metric;
          t.objective.metric_maximize = g.maximize;
          std::ostringstream v;
          v << g.value;
          t.objective.label = "seconds to " + g.metric + (g.maximize ? " >= " : " <= ") + v.str();
        }
      }
    } catch (const BadInput& e) {
      c.error(*base_node, "tune.base", "the base manifest does not validate: " + std::string(e.what()));
    }
    if (c.errors().empty()) check_against_base(c, t);
  }
  c.throw_if_any("tune manifest");
  return t;
}

std::string tune_spec_json(const TuneManifest& t, const std::string& hpt_exe) {
  namespace json = boost::json;
  json::object o;
  o["study_name"] = t.name;
  o["storage"] = t.storage;
  o["local_storage"] = t.local_storage;
  o["sampler"] = t.sampler;
  if (t.seed) o["seed"] = *t.seed;
  else o["seed"] = nullptr;
  o["pruner"] = {{"name", t.pruner.name}, {"startup_trials", t.pruner.startup_trials}, {"warmup_steps", t.pruner.warmup_steps}};
  o["trials"] = t.trials;
  o["workers"] = t.workers;
  o["objective"] = {{"kind", t.objective.time_to_target ? "time_to_target" : "metric"},
                    {"metric", t.objective.metric},
                    {"direction", t.objective.maximize ? "maximize" : "minimize"},
                    {"metric_maximize", t.objective.metric_maximize},
                    {"label", t.objective.label}};
  json::array params;
  for (const auto& p : t.params) {
    json::object j;
    j["name"] = p.name;
    if (p.type == TuneParam::Type::Choice) {
      j["type"] = "choice";
      json::array choices;
      for (const auto& ch : p.choices) choices.push_back({{"value", json::parse(ch.json)}, {"toml", ch.toml}});
      j["choices"] = std::move(choices);
    } else if (p.type == TuneParam::Type::Int) {
      j["type"] = "int";
      j["low"] = static_cast<std::int64_t>(p.low);
      j["high"] = static_cast<std::int64_t>(p.high);
      j["log"] = p.log;
      if (p.step) j["step"] = static_cast<std::int64_t>(*p.step);
    } else {
      j["type"] = "float";
      j["low"] = p.low;
      j["high"] = p.high;
      j["log"] = p.log;
      if (p.step) j["step"] = *p.step;
    }
    json::object when;
    for (const auto& [k, v] : p.when) when[k] = json::parse(v.json);
    j["when"] = std::move(when);
    params.push_back(std::move(j));
  }
  o["params"] = std::move(params);
  o["hpt"] = hpt_exe;
  o["base"] = t.base;
  json::array overrides;
  for (const auto& ov : t.run_overrides) overrides.push_back(json::string(ov));
  o["overrides"] = std::move(overrides);
  o["dir"] = t.runs_dir;
  o["trials_dir"] = (fs::path(t.runs_dir) / "trials").string();
  return json::serialize(o) + "\n";
}

}  // namespace hpt::host
