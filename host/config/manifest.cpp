#include "config/manifest.hpp"

#include "config/averaging_settings.hpp"
#include "config/batch_schedule_settings.hpp"
#include "config/curriculum_settings.hpp"
#include "config/stability_settings.hpp"
#include "config/distributed_settings.hpp"
#include "config/precision_settings.hpp"

#include "config/divergence_settings.hpp"
#include "config/message_text.hpp"
#include "config/preset.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <limits>
#include <sstream>

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

std::string parse_error_text(const toml::parse_error& e, const std::string& source) {
  const auto& region = e.source();
  std::ostringstream os;
  os << source << ":" << region.begin.line << ":" << region.begin.column << ": TOML syntax error: "
     << e.description();
  return os.str();
}

// Sets table[a][b][c] = value for the dotted key "a.b.c", creating tables on the way.
void set_dotted(toml::table& root, const std::string& dotted, const toml::node& value, const std::string& given) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = dotted.find('.', start);
    parts.push_back(dotted.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  toml::table* table = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i].empty()) throw BadInput("override '" + given + "': empty key in '" + dotted + "'");
    toml::node* child = table->get(parts[i]);
    if (child == nullptr) {
      table->insert(parts[i], toml::table{});
      child = table->get(parts[i]);
    }
    if (!child->is_table())
      throw BadInput("override '" + given + "': '" + parts[i] + "' is " + toml_type_name(*child) +
                     " in the manifest, not a table");
    table = child->as_table();
  }
  if (parts.back().empty()) throw BadInput("override '" + given + "': empty key in '" + dotted + "'");
  value.visit([&](const auto& n) { table->insert_or_assign(parts.back(), n); });
}

}  // namespace

Manifest Manifest::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw BadInput("cannot read manifest " + path + ": it is a directory (give a .toml file, e.g. " +
                   (fs::path(path) / "config.resolved.toml").string() + ", or `hpt resume " + path + "`)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadInput("cannot read manifest " + path + ": " + (fs::exists(path) ? "permission denied" : "no such file"));
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, overrides);
}

Manifest Manifest::parse(const std::string& text, const std::string& source_name,
                         const std::vector<std::string>& overrides) {
  Manifest m;
  m.path_ = source_name;
  try {
    m.table_ = toml::parse(std::string_view(text), std::string(source_name));
  } catch (const toml::parse_error& e) {
    throw BadInput(parse_error_text(e, source_name));
  }
  for (const auto& given : overrides) {
    auto eq = given.find('=');
    if (eq == std::string::npos || eq == 0)
      throw BadInput("override '" + given + "' is not of the form key.path=value (e.g. optimizer.lr=3e-3)");
    std::string key = given.substr(0, eq);
    std::string value = given.substr(eq + 1);
    toml::table holder;
    try {
      holder = toml::parse(std::string_view("v = " + value), std::string("override"));
    } catch (const toml::parse_error&) {
      holder = toml::table{};
      holder.insert("v", value);  // not TOML: take it as a plain string
    }
    toml::node* v = holder.get("v");
    if (v == nullptr) throw BadInput("override '" + given + "': no value");
    set_dotted(m.table_, key, *v, given);
    m.overrides_[key] = given;
  }
  // run.preset (config/preset.hpp): after the overrides, so that they win and may name it.
  if (const toml::node* preset = m.table_["run"]["preset"].node()) {
    const std::string at = m.where(preset->source(), "run.preset");
    const auto name = preset->value_exact<std::string>();
    if (!name)
      throw BadInput(at + ": 'run.preset' must be a string naming a preset (" + join(preset_names(preset_dirs()), ", ") +
                     "), got " + toml_type_name(*preset));
    if (!name->empty()) expand_preset(m.table_, *name, at);
  }
  return m;
}

std::string Manifest::where(const toml::source_region& region, const std::string& dotted) const {
  auto it = overrides_.find(dotted);
  if (it != overrides_.end()) return "override '" + it->second + "'";
  if (region.begin.line == 0) {
    // Inside a table set by an override.
    for (const auto& [key, given] : overrides_)
      if (dotted.rfind(key + ".", 0) == 0) return "override '" + given + "'";
    return path_;
  }
  // A key a preset added names the preset's file.
  const std::string& file = region.path && !region.path->empty() && *region.path != "override" ? *region.path : path_;
  return file + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

std::string closest_name(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    return prev[b.size()];
  };
  std::string best;
  std::size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    std::size_t d = distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

// ---------------------------------------------------------------------------------
// Validation

namespace {

const std::set<std::string> kGoalModes = {"auto", "max", "min"};

class Validator {
 public:
  explicit Validator(const Manifest& m) : m_(m) {}

  void error(const toml::node& node, const std::string& dotted, const std::string& text) {
    errors_.push_back(m_.where(node.source(), dotted) + ": " + text);
  }
  void error(const toml::key& key, const std::string& dotted, const std::string& text) {
    errors_.push_back(m_.where(key.source(), dotted) + ": " + text);
  }
  void error(const std::string& text) { errors_.push_back(m_.path() + ": " + text); }
  const std::vector<std::string>& errors() const { return errors_; }

  // Validates `table` (the section `section`) against `specs`; `ignore` are keys
  // handled elsewhere. Returns every option with defaults filled in.
  Options section(const toml::table* table, const std::string& section, const std::vector<OptionSpec>& specs,
                  const std::set<std::string>& ignore, const std::string& owner,
                  const std::set<std::string>& host_keys = {}) {
    Options out = Options::defaults(specs);
    if (table == nullptr) return out;
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(s.name);
    for (const auto& k : ignore) names.push_back(k);
    for (const auto& [key, node] : *table) {
      std::string k(key.str());
      std::string dotted = section + "." + k;
      if (ignore.count(k)) continue;
      auto spec = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) { return s.name == k; });
      if (spec == specs.end()) {
        std::string near = closest_name(k, names);
        std::vector<std::string> sorted;  // the owner's keys; the host's (host_keys) are listed apart
        for (const auto& n : names)
          if (!host_keys.count(n)) sorted.push_back(n);
        std::sort(sorted.begin(), sorted.end());
        std::vector<std::string> host(host_keys.begin(), host_keys.end());
        error(key, dotted,
              "unknown key '" + k + "' in [" + section + "]" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                  " (" + owner + " accepts: " + (sorted.empty() ? "no keys" : join(sorted, ", ")) +
                  (host.empty() ? "" : "; every [" + section + "] also accepts: " + join(host, ", ")) + ")");
        continue;
      }
      auto value = convert(node, *spec, dotted);
      if (value) out.set(k, *value);
    }
    return out;
  }

  std::optional<OptionValue> convert(const toml::node& node, const OptionSpec& spec, const std::string& dotted) {
    auto wrong = [&]() {
      error(node, dotted,
            "'" + dotted + "' must be " + expected(spec) + ", got " + toml_type_name(node) + " " + toml_value_text(node));
      return std::nullopt;
    };
    auto in_range = [&](double v) {
      if ((spec.min && v < *spec.min) || (spec.max && v > *spec.max) || std::isnan(v)) {
        error(node, dotted, "'" + dotted + "' must be " + expected(spec) + ", got " + toml_value_text(node));
        return false;
      }
      return true;
    };
    auto in_choices = [&](const std::string& v) {
      if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), v) == spec.choices.end()) {
        std::string near = closest_name(v, spec.choices);
        error(node, dotted,
              "'" + dotted + "' must be one of " + join(spec.choices, ", ") + ", got \"" + v + "\"" +
                  (near.empty() ? "" : "; did you mean \"" + near + "\"?"));
        return false;
      }
      return true;
    };
    // Floats feed float32 tensors: inf, nan and values beyond float32's range (1e308 as
    // a learning rate) would turn into inf where they are used.
    auto finite_float = [&](double v) {
      if (std::isfinite(v) && std::abs(v) <= static_cast<double>(std::numeric_limits<float>::max())) return true;
      error(node, dotted,
            "'" + dotted + "' must be a finite float within +-3.4e38 (the range of a float32 tensor), got " +
                toml_value_text(node));
      return false;
    };
    switch (spec.type) {
      case OptionType::Bool:
        if (auto v = node.value_exact<bool>()) return OptionValue(*v);
        return wrong();
      case OptionType::Int:
        if (auto v = node.value_exact<std::int64_t>()) {
          if (!in_range(static_cast<double>(*v))) return std::nullopt;
          return OptionValue(*v);
        }
        return wrong();
      case OptionType::Float:
        if (node.is_number()) {
          double v = *node.value<double>();
          if (!finite_float(v) || !in_range(v)) return std::nullopt;
          return OptionValue(v);
        }
        return wrong();
      case OptionType::String:
        if (auto v = node.value_exact<std::string>()) {
          if (!in_choices(*v)) return std::nullopt;
          return OptionValue(*v);
        }
        return wrong();
      case OptionType::Path:
        if (auto v = node.value_exact<std::string>()) return OptionValue(resolved_path(node, *v));
        return wrong();
      case OptionType::IntList:
      case OptionType::FloatList:
      case OptionType::StringList: {
        const toml::array* arr = node.as_array();
        if (arr == nullptr) return wrong();
        std::vector<std::int64_t> ints;
        std::vector<double> floats;
        std::vector<std::string> strings;
        for (const auto& el : *arr) {
          bool ok = false;
          if (spec.type == OptionType::IntList) {
            if (auto v = el.value_exact<std::int64_t>()) {
              ok = true;
              if (!in_range(static_cast<double>(*v))) return std::nullopt;
              ints.push_back(*v);
            }
          } else if (spec.type == OptionType::FloatList) {
            if (el.is_number()) {
              ok = true;
              double v = *el.value<double>();
              if (!finite_float(v) || !in_range(v)) return std::nullopt;
              floats.push_back(v);
            }
          } else if (auto v = el.value_exact<std::string>()) {
            ok = true;
            if (!in_choices(*v)) return std::nullopt;
            strings.push_back(*v);
          }
          if (!ok) return wrong();
        }
        if (spec.type == OptionType::IntList) return OptionValue(ints);
        if (spec.type == OptionType::FloatList) return OptionValue(floats);
        return OptionValue(strings);
      }
    }
    return std::nullopt;
  }

  // A Path option: absolute, relative to the folder of the file that set it (the manifest
  // or a file it includes), or to the working directory when a command-line override set it.
  std::string resolved_path(const toml::node& node, const std::string& value) const {
    if (value.empty()) return value;
    fs::path p(value);
    if (p.is_relative()) {
      const auto& file = node.source().path;
      fs::path base = file && !file->empty() ? fs::path(*file).parent_path() : fs::path();
      p = base / p;
    }
    return fs::absolute(p).lexically_normal().string();
  }

  static std::string expected(const OptionSpec& spec) {
    std::string what = std::string("a ") + to_string(spec.type);
    if (spec.type == OptionType::Int || spec.type == OptionType::Float) what = std::string("an ") + to_string(spec.type);
    if (spec.type == OptionType::Float) what = "a float";
    auto num = [](double v) {
      std::ostringstream os;
      os << v;
      return os.str();
    };
    if (spec.min && spec.max) what += " in [" + num(*spec.min) + ", " + num(*spec.max) + "]";
    else if (spec.min) what += " >= " + num(*spec.min);
    else if (spec.max) what += " <= " + num(*spec.max);
    return what;
  }

 private:
  const Manifest& m_;
  std::vector<std::string> errors_;
};

struct SectionDefault {
  PluginKind kind;
  const char* plugin;  // nullptr: the section is required (task, optimizer) or optional (checkpointer)
};

// Sections and the plugin used when the manifest leaves one out.
const std::vector<SectionDefault>& section_defaults() {
  static const std::vector<SectionDefault> d = {
      {PluginKind::Task, nullptr},          {PluginKind::Optimizer, nullptr},
      {PluginKind::Backend, "cpu"},         {PluginKind::DynamicsModel, "none"},
      {PluginKind::CorrectionStrategy, "none"}, {PluginKind::PhaseController, "full"},
      {PluginKind::Checkpointer, nullptr},
  };
  return d;
}

std::vector<OptionSpec> goal_specs(bool early_stop) {
  std::vector<OptionSpec> specs = {
      option_string("metric", "", "the evaluation metric to watch, e.g. val_accuracy"),
      option_string("mode", "auto", "max: higher is better; min: lower is better; auto: min for names with 'loss', 'error', 'perplexity', 'ppl' or 'bpc'", {"auto", "max", "min"}),
  };
  if (early_stop) {
    specs.push_back(option_int("patience", 5, "evaluations without improvement before stopping", 1));
    specs.push_back(option_float("min_delta", 0.0, "smallest change that counts as improvement", 0.0));
  } else {
    specs.push_back(option_float("value", 0.0, "the value to reach"));
    specs.push_back(option_bool("stop", true,
                                "stop the run when the target is reached (false: record time to target and go on "
                                "to max_steps, for the final metric at the budget)"));
    specs.push_back(option_int("min_steps", 0,
                               "with stop = true, a run that reaches the target earlier goes on to this many "
                               "step-equivalents first (for the metric at a budget as well as the time to target)",
                               0));
  }
  return specs;
}

// Why `name` cannot name a run directory, or "".
std::string run_name_problem(const std::string& name) {
  if (name.empty()) return "it is empty";
  if (name == "." || name == "..") return "'" + name + "' is not a name";
  if (name.find('/') != std::string::npos) return "it contains '/'";
  if (name.find('\0') != std::string::npos) return "it contains a NUL byte";
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f) return "it contains a control character";
  if (name.size() > 255) return "it is " + std::to_string(name.size()) + " bytes long; at most 255";
  return "";
}

bool maximize(const std::string& metric, const std::string& mode) { return !lower_is_better(metric, mode); }

}  // namespace

const std::vector<OptionSpec>& run_option_specs() {
  static const std::vector<OptionSpec> specs = {
      option_string("name", "", "run name: the run directory is <runs_dir>/<name> (default: the manifest's file name)"),
      option_int("seed", 0, "seed of every random generator of the run", 0),
      option_int("max_steps", 1000, "budget in step-equivalents (real steps plus predicted steps)", 1),
      option_int("eval_every", 200, "evaluate every this many step-equivalents (0: only at the end)", 0),
      option_int("eval_threads", 0,
                 "CPU threads while evaluating (evaluation time is outside the training time: more "
                 "threads than training uses shorten a run without changing what it measures; "
                 "0: as many as training)",
                 0, 1024),
      option_int("log_every", 1, "write a metrics line every this many steps", 1),
      option_int("probe_interval", 5, "during a predicted phase, measure the probe loss every this many steps", 1),
      option_int("record_trajectory", 0,
                 "write the weights to trajectory/step_N.pt in the run directory every this many "
                 "step-equivalents and at step 0, for training a nowcaster (0: never)",
                 0),
      option_string("runs_dir", "runs", "where run directories are created"),
      option_string_list("plugin_dirs", {}, "extra directories searched for plugin libraries, after HPT_PLUGIN_PATH"),
      option_bool("resume", false, "continue from the run directory's latest valid checkpoint"),
      option_string("log_level", "info", "console log level", {"trace", "debug", "info", "warn", "error"}),
      option_string("preset", "",
                    "a named setting (configs/presets/<name>.toml, e.g. hybrid_linear) whose sections and keys "
                    "fill in what the manifest leaves out; the resolved manifest holds them expanded"),
      option_string_list("loggers", {"jsonl"},
                         "metrics files in the run directory: jsonl (metrics.jsonl, always written), csv "
                         "(metrics.csv), tensorboard (events.out.tfevents.*)",
                         {"jsonl", "csv", "tensorboard"}),
  };
  return specs;
}

const std::vector<OptionSpec>& task_host_option_specs() {
  static const std::vector<OptionSpec> specs = {
      option_path("init_from", "",
                  "weights to start from: a run's final_weights.pt, `hpt export`'s file, or PyTorch's "
                  "torch.save(model.state_dict(), path); copied by name before the first step, not on resume"),
  };
  return specs;
}

std::vector<std::string> plugin_dirs_of(const Manifest& manifest) {
  std::vector<std::string> dirs;
  if (const auto* arr = manifest.table()["run"]["plugin_dirs"].as_array()) {
    fs::path base = fs::path(manifest.path()).parent_path();
    for (const auto& el : *arr)
      if (auto s = el.value<std::string>()) {
        fs::path p(*s);
        dirs.push_back(fs::absolute(p.is_relative() ? base / p : p).lexically_normal().string());
      }
  }
  return dirs;
}

ResolvedManifest resolve(const Manifest& manifest, PluginLoader& loader) {
  Validator v(manifest);
  ResolvedManifest out;
  out.source = manifest.path();
  const toml::table& root = manifest.table();

  // Unknown top-level sections.
  std::vector<std::string> sections = {"run", "distributed", "averaging", "lookahead", "param_groups"};
  for (const char* host_section : {"stability", "batch_schedule"}) sections.push_back(host_section);
  sections.push_back("curriculum");
  for (const auto& d : section_defaults()) sections.push_back(section_name(d.kind));
  for (const auto& [key, node] : root) {
    std::string k(key.str());
    if (std::find(sections.begin(), sections.end(), k) == sections.end()) {
      std::string near = closest_name(k, sections);
      v.error(key, k,
              "unknown section [" + k + "]" + (near.empty() ? "" : "; did you mean [" + near + "]?") +
                  " (sections: " + join(sections, ", ") + ")");
    } else if (k == "param_groups") {
      if (!node.is_array_of_tables())
        v.error(node, k, "'param_groups' must be an array of tables ([[param_groups]]), got " + toml_type_name(node));
    } else if (!node.is_table()) {
      v.error(node, k, "'" + k + "' must be a table ([" + k + "]), got " + toml_type_name(node));
    }
  }

  // [distributed]
  out.distributed = v.section(root["distributed"].as_table(), "distributed", DistributedSettings::option_specs(), {},
                              "[distributed]");

  // [averaging], [lookahead]: host features, on when their section is there.
  if (const toml::table* t = root["averaging"].as_table()) {
    out.averaging = v.section(t, "averaging", AveragingSettings::option_specs(), {}, "[averaging]");
    const toml::node* decay = t->get("decay");
    const double d = out.averaging->get_float("decay");
    if (decay && (d <= 0.0 || d >= 1.0))
      v.error(*decay, "averaging.decay",
              "'averaging.decay' must be a float strictly between 0 and 1 (e.g. 0.99), got " + toml_value_text(*decay));
  }
  if (const toml::table* t = root["lookahead"].as_table()) {
    out.lookahead = v.section(t, "lookahead", LookaheadSettings::option_specs(), {}, "[lookahead]");
    const toml::node* alpha = t->get("alpha");
    if (alpha && out.lookahead->get_float("alpha") <= 0.0)
      v.error(*alpha, "lookahead.alpha",
              "'lookahead.alpha' must be a float in (0, 1] (e.g. 0.5), got " + toml_value_text(*alpha));
  }

  // [stability], [batch_schedule]: host features, on when their section is there; the
  // checks the key ranges cannot make name the key (config/stability_settings.hpp,
  // config/batch_schedule_settings.hpp).
  auto host_feature = [&](const char* name, std::vector<OptionSpec> specs, auto problems) -> std::optional<Options> {
    const toml::table* t = root[name].as_table();
    if (!t) return std::nullopt;
    const std::size_t errors_before = v.errors().size();
    Options o = v.section(t, name, specs, {}, std::string("[") + name + "]");
    if (v.errors().size() == errors_before)
      for (const auto& [key, text] : problems(o)) {
        const toml::node* node = t->get(key);
        if (node) v.error(*node, std::string(name) + "." + key, text + ", got " + toml_value_text(*node));
        else v.error(*t, std::string(name) + "." + key, text);
      }
    return o;
  };
  out.stability = host_feature("stability", StabilitySettings::option_specs(), StabilitySettings::problems);
  out.batch_schedule =
      host_feature("batch_schedule", BatchScheduleSettings::option_specs(), BatchScheduleSettings::problems);
  out.curriculum = host_feature("curriculum", CurriculumSettings::option_specs(), CurriculumSettings::problems);

  // [[param_groups]]: validated here, matched to the model's parameter names by the engine.
  if (const toml::array* groups = root["param_groups"].as_array(); groups && groups->is_array_of_tables()) {
    for (std::size_t g = 0; g < groups->size(); ++g) {
      const toml::table& t = *groups->get(g)->as_table();
      const std::string label = "param_groups[" + std::to_string(g) + "]";
      Options o = v.section(&t, label, param_group_option_specs(), {}, "[[param_groups]]");
      ParamGroupSpec spec;
      spec.name = o.get_string("name").empty() ? "group " + std::to_string(g + 1) : o.get_string("name");
      spec.patterns = o.get_string_list("params");
      spec.lr_scale = o.get_float("lr_scale");
      if (t.get("weight_decay")) spec.weight_decay = o.get_float("weight_decay");
      spec.where = manifest.where(t.source(), label);
      if (spec.patterns.empty())
        v.error(t, label + ".params",
                "[[param_groups]] '" + spec.name + "' needs 'params', a list of glob patterns over parameter names "
                "(e.g. params = [\"*.bias\"])");
      const toml::node* scale = t.get("lr_scale");
      out.param_groups.push_back(std::move(spec));
    }
  }

  // [run]
  const toml::table* run = root["run"].as_table();
  out.run_options = v.section(run, "run", run_option_specs(), {"target", "early_stop", "divergence"}, "[run]");
  RunConfig& rc = out.run;
  rc.name = out.run_options.get_string("name");
  if (rc.name.empty()) rc.name = fs::path(manifest.path()).stem().string();
  if (std::string why = run_name_problem(rc.name); !why.empty()) {
    const toml::node* name = run ? run->get("name") : nullptr;
    std::string text = "'run.name' must be a directory name (" + why + ")";
    if (name) v.error(*name, "run.name", text);
    else v.error(text + "; set run.name");
  }
  rc.seed = out.run_options.get_int("seed");
  rc.max_steps = out.run_options.get_int("max_steps");
  rc.eval_every = out.run_options.get_int("eval_every");
  rc.eval_threads = out.run_options.get_int("eval_threads");
  rc.log_every = out.run_options.get_int("log_every");
  rc.probe_interval = out.run_options.get_int("probe_interval");
  rc.record_trajectory = out.run_options.get_int("record_trajectory");
  rc.runs_dir = out.run_options.get_string("runs_dir");
  rc.plugin_dirs = plugin_dirs_of(manifest);
  out.run_options.set("plugin_dirs", rc.plugin_dirs);  // absolute, so the resolved manifest works from anywhere
  rc.resume = out.run_options.get_bool("resume");
  rc.log_level = out.run_options.get_string("log_level");
  rc.divergence = Options::defaults(DivergenceSettings::option_specs());
  if (const toml::node* node = run ? run->get("divergence") : nullptr) {
    if (node->is_table())
      rc.divergence = v.section(node->as_table(), "run.divergence", DivergenceSettings::option_specs(), {}, "run.divergence");
    else
      v.error(*node, "run.divergence", "'run.divergence' must be a table like { loss_sigma = 6.0, max_rollbacks = 3 }, got " +
                                           toml_type_name(*node));
  }
  for (bool early : {false, true}) {
    const char* key = early ? "early_stop" : "target";
    if (run == nullptr) break;
    const toml::node* node = run->get(key);
    if (node == nullptr) continue;
    std::string dotted = std::string("run.") + key;
    if (!node->is_table()) {
      v.error(*node, dotted,
              "'" + dotted + "' must be a table like " +
                  (early ? "{ metric = \"val_loss\", patience = 5, min_delta = 0.0 }"
                         : "{ metric = \"val_accuracy\", value = 0.895 }") +
                  ", got " + toml_type_name(*node));
      continue;
    }
    Options g = v.section(node->as_table(), dotted, goal_specs(early), {}, dotted);
    MetricGoal goal;
    goal.metric = g.get_string("metric");
    if (goal.metric.empty()) {
      v.error(*node, dotted, "'" + dotted + ".metric' is required (e.g. \"val_accuracy\")");
      continue;
    }
    if (!early && !node->as_table()->contains("value")) {
      v.error(*node, dotted, "'" + dotted + ".value' is required (the value to reach)");
      continue;
    }
    goal.maximize = maximize(goal.metric, g.get_string("mode"));
    if (early) {
      goal.patience = g.get_int("patience");
      goal.value = g.get_float("min_delta");
      rc.early_stop = goal;
    } else {
      goal.value = g.get_float("value");
      goal.stop = g.get_bool("stop");
      goal.min_steps = g.get_int("min_steps");
      rc.target = goal;
    }
  }

  // Plugin sections.
  for (const auto& d : section_defaults()) {
    const std::string section = section_name(d.kind);
    const toml::node* node = root.get(section);
    const toml::table* table = node ? node->as_table() : nullptr;
    if (node && !table) continue;  // reported above
    std::string name;
    if (table && table->contains("plugin")) {
      const toml::node& p = *table->get("plugin");
      if (auto s = p.value_exact<std::string>()) name = *s;
      else {
        v.error(p, section + ".plugin", "'" + section + ".plugin' must be a string naming a " +
                                            interface_name(d.kind) + " plugin, got " + toml_type_name(p));
        continue;
      }
    } else if (d.plugin) {
      name = d.plugin;
    } else if (d.kind == PluginKind::Checkpointer && table == nullptr) {
      continue;  // no checkpoints
    } else {
      if (table) v.error(*node, section, "[" + section + "] needs 'plugin = \"<name>\"'");
      else v.error("missing section [" + section + "] (with plugin = \"<name>\")");
      continue;
    }
    std::shared_ptr<const PluginInfo> info;
    try {
      info = loader.find(d.kind, name);
    } catch (const BadInput& e) {
      if (table && table->contains("plugin"))
        v.error(*table->get("plugin"), section + ".plugin", e.what());
      else
        v.error(std::string("[") + section + "] (default plugin '" + name + "'): " + e.what());
      continue;
    }
    std::vector<OptionSpec> specs = info->options;
    std::set<std::string> host_keys;
    if (d.kind == PluginKind::Backend) {
      // Precision, loss scaling and the memory budget: the host's keys, in every [backend].
      for (auto& spec : PrecisionSettings::option_specs()) {
        bool declared = false;
        for (const auto& own : specs) declared = declared || own.name == spec.name;
        if (declared) continue;
        host_keys.insert(spec.name);
        specs.push_back(std::move(spec));
      }
    }
    if (d.kind == PluginKind::Task) {
      // task.init_from and the like: the host's keys, in every [task].
      for (const auto& spec : task_host_option_specs()) {
        bool declared = false;
        for (const auto& own : specs) declared = declared || own.name == spec.name;
        if (declared) continue;
        host_keys.insert(spec.name);
        specs.push_back(spec);
      }
    }
    PluginChoice choice{d.kind, info,
                        v.section(table, section, specs, {"plugin"}, "plugin '" + name + "'", host_keys)};
    out.plugins.emplace(d.kind, std::move(choice));
  }

  if (!v.errors().empty()) {
    std::string text = v.errors().size() == 1 ? "" : std::to_string(v.errors().size()) + " problems in the manifest:\n  ";
    throw BadInput(text + join(v.errors(), "\n  "));
  }
  return out;
}

namespace {

// An option as a key of `t`, for toml++'s own writer.
void insert_option(toml::table& t, const std::string& key, const OptionValue& value) {
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, std::vector<std::int64_t>> || std::is_same_v<V, std::vector<double>> ||
                      std::is_same_v<V, std::vector<std::string>>) {
          toml::array array;
          for (const auto& x : v) array.push_back(x);
          t.insert(key, std::move(array));
        } else {
          t.insert(key, v);
        }
      },
      value);
}

toml::table options_table(const Options& options) {
  toml::table t;
  for (const auto& [k, v] : options.values()) insert_option(t, k, v);
  return t;
}

toml::table inline_table(toml::table t) {
  t.is_inline(true);
  return t;
}

toml::table goal_table(const MetricGoal& g, bool early) {
  toml::table t{{"metric", g.metric}, {"mode", g.maximize ? "max" : "min"}};
  if (early) {
    t.insert("patience", g.patience);
    t.insert("min_delta", g.value);
  } else {
    t.insert("value", g.value);
    t.insert("stop", g.stop);
    t.insert("min_steps", g.min_steps);
  }
  return inline_table(std::move(t));
}

}  // namespace

// Written by toml++ (quoting and escapes are its business), one section at a time so
// that [run] comes first and the plugin sections follow in their usual order.
std::string ResolvedManifest::to_toml() const {
  std::ostringstream os;
  os << "# Resolved from " << source << " (defaults and overrides applied)\n";
  Options run_opts = run_options;
  if (const std::string preset = run_opts.get_string("preset"); !preset.empty()) {
    // Expanded below: the resolved manifest stands alone, without the preset's file.
    os << "# run.preset \"" << preset << "\" expanded into the sections below\n";
    run_opts.set("preset", std::string());
  }
  auto write_section = [&](const std::string& name, toml::table section) {
    // Basic "..." strings with every control character escaped; floats exact (toml++
    // writes max_digits10 digits, so each reads back as the same double).
    constexpr auto flags = toml::format_flags::allow_unicode_strings | toml::format_flags::indentation;
    os << "\n" << toml::toml_formatter(toml::table{{name, std::move(section)}}, flags) << "\n";
  };
  run_opts.set("name", run.name);
  toml::table run_table = options_table(run_opts);
  if (run.target) run_table.insert("target", goal_table(*run.target, false));
  if (run.early_stop) run_table.insert("early_stop", goal_table(*run.early_stop, true));
  run_table.insert("divergence", inline_table(options_table(run.divergence)));
  write_section("run", std::move(run_table));
  write_section("distributed", options_table(distributed));
  if (averaging) write_section("averaging", options_table(*averaging));
  if (lookahead) write_section("lookahead", options_table(*lookahead));
  if (stability) write_section("stability", options_table(*stability));
  if (batch_schedule) write_section("batch_schedule", options_table(*batch_schedule));
  if (curriculum) write_section("curriculum", options_table(*curriculum));
  if (!param_groups.empty()) {
    toml::array groups;
    for (const ParamGroupSpec& g : param_groups) {
      toml::array patterns;
      for (const auto& p : g.patterns) patterns.push_back(p);
      toml::table t{{"name", g.name}, {"params", std::move(patterns)}, {"lr_scale", g.lr_scale}};
      if (g.weight_decay) t.insert("weight_decay", *g.weight_decay);
      groups.push_back(std::move(t));
    }
    constexpr auto flags = toml::format_flags::allow_unicode_strings | toml::format_flags::indentation;
    os << "\n" << toml::toml_formatter(toml::table{{"param_groups", std::move(groups)}}, flags) << "\n";
  }
  for (const auto& [kind, choice] : plugins) {
    toml::table section = options_table(choice.options);
    section.insert("plugin", choice.info->name);
    write_section(section_name(kind), std::move(section));
  }
  return os.str();
}

}  // namespace hpt::host
