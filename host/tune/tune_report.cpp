#include "tune/tune_report.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <boost/json.hpp>

#include "hpt/error.hpp"

#include "bench/bench_report.hpp"
#include "bench/json_fields.hpp"
#include "bench/svg_plot.hpp"
#include "config/message_text.hpp"
#include "output/run_directory.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

const char* kCompleteColor = "#0072B2";
const char* kPrunedColor = "#D55E00";
const char* kBestColor = "#009E73";

boost::json::value read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunError("cannot read " + path.string() + ": `hpt tune` writes it after running the trials");
  std::stringstream s;
  s << in.rdbuf();
  std::error_code ec;
  boost::json::value v = boost::json::parse(s.str(), ec);
  if (ec) throw RunError("cannot parse " + path.string() + ": " + ec.message());
  return v;
}

std::optional<double> optional_number(const boost::json::object& o, const char* key) {
  double v = json_number(o, key, std::numeric_limits<double>::quiet_NaN());
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

std::string param_text(const boost::json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_double()) return short_number(v.as_double());
  return boost::json::serialize(v);
}

const boost::json::value* param_of(const TuneTrial& t, const std::string& name) {
  for (const auto& [k, v] : t.params)
    if (k == name) return &v;
  return nullptr;
}

std::string html_table(const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream os;
  os << "<table>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    os << "<tr>";
    for (const auto& c : rows[i]) os << (i == 0 ? "<th>" : "<td>") << xml_escape(c) << (i == 0 ? "</th>" : "</td>");
    os << "</tr>\n";
  }
  os << "</table>\n";
  return os.str();
}

// A value axis over `values` with a little room, log when they are positive and span more than 10x.
void value_axis(SvgPlot& plot, const std::vector<double>& values) {
  if (values.empty()) return;
  auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  double lo = *lo_it, hi = *hi_it;
  bool log = lo > 0 && hi / lo > 10;
  if (log) {
    plot.y_range(lo / 1.3, hi * 1.3, true);
  } else {
    double pad = hi > lo ? (hi - lo) * 0.08 : std::max(std::abs(lo) * 0.1, 1e-3);
    plot.y_range(lo - pad, hi + pad, false);
  }
}

std::string trial_tip(const TuneTrial& t, const std::string& label) {
  std::string tip = "trial " + std::to_string(t.number) + " (" + t.state + ")";
  if (t.value) tip += ": " + label + " = " + short_number(*t.value);
  for (const auto& [k, v] : t.params) tip += "; " + k + " = " + param_text(v);
  return tip;
}

std::string plot_objective(const TuneManifest& tune, const TuneResults& r) {
  const bool pruned_on_scale = !tune.objective.time_to_target;  // reported values are the objective's
  std::vector<double> ys;
  double x_max = 1;
  for (const auto& t : r.trials) {
    x_max = std::max(x_max, static_cast<double>(t.number));
    if (t.value) ys.push_back(*t.value);
    if (pruned_on_scale && t.state == "PRUNED" && !t.intermediate.empty()) ys.push_back(t.intermediate.back().y);
  }
  if (ys.empty()) return "";
  SvgPlot plot("objective", 1180, 380, "(a) " + tune.objective.label + " by trial", "trial", tune.objective.label);
  plot.x_range(-0.5, x_max + 0.5);
  value_axis(plot, ys);
  std::vector<CurvePoint> best;
  std::optional<double> so_far;
  for (const auto& t : r.trials) {
    if (t.value) {
      if (!so_far || (tune.objective.maximize ? *t.value > *so_far : *t.value < *so_far)) so_far = t.value;
      plot.point(static_cast<double>(t.number), *t.value, kCompleteColor, false, trial_tip(t, tune.objective.label));
    } else if (pruned_on_scale && t.state == "PRUNED" && !t.intermediate.empty()) {
      plot.point(static_cast<double>(t.number), t.intermediate.back().y, kPrunedColor, true,
                 trial_tip(t, tune.objective.label) + "; pruned at step " + short_number(t.intermediate.back().x));
    }
    if (so_far) {
      if (!best.empty()) best.push_back({static_cast<double>(t.number), best.back().y});
      best.push_back({static_cast<double>(t.number), *so_far});
    }
  }
  plot.line(best, kBestColor, 1.5);
  plot.legend("complete", kCompleteColor, SvgPlot::Swatch::Dot);
  if (pruned_on_scale) plot.legend("pruned (last reported value)", kPrunedColor, SvgPlot::Swatch::HollowDot);
  plot.legend("best so far", kBestColor, SvgPlot::Swatch::Line);
  return plot.render();
}

std::string plot_intermediate(const TuneManifest& tune, const TuneResults& r) {
  std::vector<double> ys;
  double x_max = 1;
  for (const auto& t : r.trials)
    for (const auto& p : t.intermediate) {
      ys.push_back(p.y);
      x_max = std::max(x_max, p.x);
    }
  if (ys.empty()) return "";
  const std::string what = tune.objective.time_to_target
                               ? (tune.objective.metric_maximize ? "-" : "") + tune.objective.metric
                               : tune.objective.metric;
  SvgPlot plot("intermediate", 1180, 380, "(b) evaluations reported to the pruner", "step", what);
  plot.x_range(0, x_max);
  value_axis(plot, ys);
  for (const auto& t : r.trials) {
    if (t.intermediate.empty()) continue;
    bool pruned = t.state == "PRUNED";
    plot.seed_line(t.intermediate, pruned ? kPrunedColor : kCompleteColor, "trial " + std::to_string(t.number));
    if (pruned)
      plot.point(t.intermediate.back().x, t.intermediate.back().y, kPrunedColor, true,
                 "trial " + std::to_string(t.number) + " pruned at step " + short_number(t.intermediate.back().x));
  }
  plot.legend("complete", kCompleteColor, SvgPlot::Swatch::ThinLine);
  plot.legend("pruned (stopped at the hollow dot)", kPrunedColor, SvgPlot::Swatch::ThinLine);
  return plot.render();
}

// The objective against one parameter's value (log10 for a log-scale parameter; one row
// per value for a choice), complete trials only.
std::string plot_slice(const TuneManifest& tune, const TuneResults& r, const TuneParam& p, char letter) {
  std::vector<const TuneTrial*> with;
  for (const auto& t : r.trials)
    if (t.value && param_of(t, p.name)) with.push_back(&t);
  if (with.empty()) return "";
  const std::string id = "slice-" + p.name;
  const std::string title = "(" + std::string(1, letter) + ") " + tune.objective.label + " against " + p.name;
  if (p.type == TuneParam::Type::Choice) {
    std::vector<std::string> rows;
    for (const auto& ch : p.choices) rows.push_back(param_text(boost::json::parse(ch.json)));
    SvgPlot plot(id, 1180, 70 + 40 * static_cast<int>(rows.size()) + 60, title, tune.objective.label, p.name);
    plot.y_rows(rows);
    std::vector<double> xs;
    for (const auto* t : with) xs.push_back(*t->value);
    auto [lo, hi] = std::minmax_element(xs.begin(), xs.end());
    double pad = *hi > *lo ? (*hi - *lo) * 0.08 : std::max(std::abs(*lo) * 0.1, 1e-3);
    plot.x_range(*lo - pad, *hi + pad);
    for (const auto* t : with) {
      std::string v = param_text(*param_of(*t, p.name));
      auto row = std::find(rows.begin(), rows.end(), v);
      if (row != rows.end()) plot.dot(static_cast<std::size_t>(row - rows.begin()), *t->value, false, trial_tip(*t, tune.objective.label));
    }
    return plot.render();
  }
  auto x_of = [&](const TuneTrial& t) {
    double v = param_of(t, p.name)->to_number<double>();
    return p.log ? std::log10(v) : v;
  };
  SvgPlot plot(id, 1180, 340, title, p.log ? "log10(" + p.name + ")" : p.name, tune.objective.label);
  plot.x_range(p.log ? std::log10(p.low) : p.low, p.log ? std::log10(p.high) : p.high);
  std::vector<double> ys;
  for (const auto* t : with) ys.push_back(*t->value);
  value_axis(plot, ys);
  for (const auto* t : with) plot.point(x_of(*t), *t->value, kCompleteColor, false, trial_tip(*t, tune.objective.label));
  return plot.render();
}

std::vector<std::vector<std::string>> trial_table(const TuneManifest& tune, const TuneResults& r) {
  std::vector<std::string> head = {"trial", "state", tune.objective.label};
  for (const auto& p : tune.params) head.push_back(p.name);
  for (const char* h : {"steps", "training s", "wall s", "error"}) head.push_back(h);
  std::vector<std::vector<std::string>> rows = {head};
  auto num = [](const std::optional<double>& v) { return v ? short_number(*v) : std::string("—"); };
  for (const auto& t : r.trials) {
    std::vector<std::string> row = {std::to_string(t.number), t.state + (t.interrupted ? " (interrupted)" : ""), num(t.value)};
    for (const auto& p : tune.params) {
      const auto* v = param_of(t, p.name);
      row.push_back(v ? param_text(*v) : "—");
    }
    row.push_back(num(t.steps));
    row.push_back(num(t.train_seconds));
    row.push_back(num(t.seconds));
    row.push_back(t.error);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

TuneResults read_tune_results(const TuneManifest& tune, const std::string& command) {
  TuneResults r;
  r.command = command;
  r.machine = this_machine();
  boost::json::value doc = read_json_file(fs::path(tune.runs_dir) / "trials.json");
  const auto* trials = doc.is_object() ? doc.as_object().if_contains("trials") : nullptr;
  if (trials == nullptr || !trials->is_array()) throw RunError(tune.runs_dir + "/trials.json has no \"trials\" array");
  for (const auto& v : trials->as_array()) {
    if (!v.is_object()) continue;
    const auto& o = v.as_object();
    TuneTrial t;
    t.number = static_cast<std::int64_t>(json_number(o, "number", -1));
    t.state = json_text(o, "state");
    if (t.state == "COMPLETE") t.value = optional_number(o, "value");
    if (const auto* p = o.if_contains("params"); p && p->is_object())
      for (const auto& kv : p->as_object()) t.params.emplace_back(std::string(kv.key()), kv.value());
    if (const auto* ov = o.if_contains("overrides"); ov && ov->is_array())
      for (const auto& s : ov->as_array())
        if (s.is_string()) t.overrides.emplace_back(s.as_string());
    t.run_dir = json_text(o, "run_dir");
    t.steps = optional_number(o, "steps");
    t.train_seconds = optional_number(o, "train_seconds");
    t.seconds = optional_number(o, "seconds");
    if (const auto* i = o.if_contains("interrupted"); i && i->is_bool()) t.interrupted = i->as_bool();
    t.error = json_text(o, "error");
    if (const auto* in = o.if_contains("intermediate"); in && in->is_array())
      for (const auto& pt : in->as_array())
        if (pt.is_array() && pt.as_array().size() == 2 && pt.as_array()[0].is_number() && pt.as_array()[1].is_number())
          t.intermediate.push_back({pt.as_array()[0].to_number<double>(), pt.as_array()[1].to_number<double>()});
    r.trials.push_back(std::move(t));
  }
  std::sort(r.trials.begin(), r.trials.end(), [](const TuneTrial& a, const TuneTrial& b) { return a.number < b.number; });
  std::error_code ec;
  if (fs::exists(fs::path(tune.runs_dir) / "importance.json", ec)) {
    boost::json::value imp = read_json_file(fs::path(tune.runs_dir) / "importance.json");
    if (imp.is_object()) {
      if (const auto* m = imp.as_object().if_contains("importance"); m && m->is_object())
        for (const auto& kv : m->as_object())
          if (kv.value().is_number()) r.importance.emplace_back(std::string(kv.key()), kv.value().to_number<double>());
      r.importance_missing = json_text(imp.as_object(), "why_none");
    }
  }
  std::sort(r.importance.begin(), r.importance.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return r;
}

std::optional<TuneTrial> best_trial(const TuneManifest& tune, const TuneResults& results) {
  std::optional<TuneTrial> best;
  for (const auto& t : results.trials) {
    if (!t.value) continue;
    if (!best || (tune.objective.maximize ? *t.value > *best->value : *t.value < *best->value)) best = t;
  }
  return best;
}

std::string best_manifest_toml(const TuneManifest& tune, const TuneTrial& best) {
  std::vector<std::string> overrides = tune.run_overrides;
  overrides.insert(overrides.end(), best.overrides.begin(), best.overrides.end());
  Manifest m = Manifest::load(tune.base, overrides);
  PluginLoader loader(PluginLoader::default_dirs(plugin_dirs_of(m)));
  ResolvedManifest resolved = resolve(m, loader);
  toml::table table = m.table();
  // Path options are relative to the file that set them: best.toml lives elsewhere, so
  // each relative one becomes the absolute path the run resolved it to.
  for (const auto& [kind, choice] : resolved.plugins) {
    toml::table* section = table[section_name(kind)].as_table();
    if (section == nullptr || !choice.info) continue;
    std::vector<OptionSpec> specs = choice.info->options;
    if (kind == PluginKind::Task) specs.insert(specs.end(), task_host_option_specs().begin(), task_host_option_specs().end());
    for (const auto& spec : specs) {
      if (spec.type != OptionType::Path || !choice.options.has(spec.name)) continue;
      const toml::node* node = section->get(spec.name);
      if (node == nullptr || !node->is_string() || fs::path(*node->value<std::string>()).is_absolute()) continue;
      section->insert_or_assign(spec.name, choice.options.get_string(spec.name));
    }
  }
  if (toml::table* run = table["run"].as_table(); run && run->get("plugin_dirs")) {
    toml::array dirs;
    for (const auto& d : plugin_dirs_of(m)) dirs.push_back(d);
    run->insert_or_assign("plugin_dirs", std::move(dirs));
  }
  std::ostringstream os;
  os << "# Written by `hpt tune` (" << tune.path << "): the best trial, " << best.number << ", with "
     << tune.objective.label << " = " << short_number(*best.value) << ".\n"
     << "# The base manifest " << tune.base << " with these overrides:\n";
  for (const auto& o : overrides) os << "#   " << o << "\n";
  os << "# Run it as it is: hpt run best.toml\n\n"
     << toml::toml_formatter(table, toml::toml_formatter::default_flags & ~toml::format_flags::allow_literal_strings)
     << "\n";
  return os.str();
}

std::string tune_report_html(const TuneManifest& tune, const TuneResults& r) {
  std::ostringstream os;
  const std::string title = "Tune " + tune.name + ": " + (tune.objective.maximize ? "maximize " : "minimize ") + tune.objective.label;
  std::size_t complete = 0, pruned = 0, failed = 0, other = 0;
  for (const auto& t : r.trials) {
    if (t.state == "COMPLETE") ++complete;
    else if (t.state == "PRUNED") ++pruned;
    else if (t.state == "FAIL") ++failed;
    else ++other;
  }
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << xml_escape(title) << "</title>\n"
     << "<style>\n" << report_css() << "</style></head><body>\n"
     << "<h1>" << xml_escape(title) << "</h1>\n"
     << "<div class=\"meta\">" << xml_escape(r.machine.date) << " · " << xml_escape(r.machine.arch) << ", "
     << r.machine.cores << " cores, " << xml_escape(r.machine.cpu_model) << "<br>command: <code>" << xml_escape(r.command)
     << "</code><br>base manifest: " << xml_escape(tune.base) << " · sampler: " << xml_escape(tune.sampler)
     << " · pruner: " << xml_escape(tune.pruner.name) << " · storage: " << xml_escape(tune.storage) << "<br>trials: "
     << r.trials.size() << " (" << complete << " complete, " << pruned << " pruned, " << failed << " failed"
     << (other ? ", " + std::to_string(other) + " running" : "") << ") of " << tune.trials << " asked for, "
     << tune.workers << " at a time</div>\n";
  std::optional<TuneTrial> best = best_trial(tune, r);
  os << "<div class=\"headline\">";
  if (best) {
    os << "Best: trial " << best->number << ", " << xml_escape(tune.objective.label) << " = " << short_number(*best->value)
       << ", with";
    for (const auto& [k, v] : best->params) os << " <code>" << xml_escape(k + " = " + param_text(v)) << "</code>";
    os << " (<code>best.toml</code>)";
  } else {
    os << "No trial completed yet.";
  }
  os << "</div>\n";
  auto figure = [&](const std::string& svg, const std::string& caption) {
    if (!svg.empty()) os << "<figure>" << svg << "<figcaption>" << xml_escape(caption) << "</figcaption></figure>\n";
  };
  figure(plot_objective(tune, r),
         tune.objective.time_to_target
             ? "Each dot is a complete trial (a miss counts by the bench protocol's budget rule); the line is the best so far."
             : "Each dot is a trial: filled, complete; hollow, pruned (at the last value it reported); the line is the best so far.");
  figure(plot_intermediate(tune, r),
         "Each line is one trial's evaluations as reported to the pruner" +
             std::string(tune.objective.time_to_target ? " (the target metric, oriented so that lower is better)" : "") +
             "; a pruned trial's line ends where it was stopped.");
  char letter = 'c';
  for (const auto& p : tune.params) {
    std::string svg = plot_slice(tune, r, p, letter);
    if (svg.empty()) continue;
    figure(svg, "Slice: each dot is a complete trial" + std::string(p.log ? "; the parameter on a log scale." : "."));
    ++letter;
  }
  os << "<h2>Parameter importance</h2>\n";
  if (!r.importance.empty()) {
    std::vector<std::vector<std::string>> rows = {{"parameter", "importance (Optuna)"}};
    for (const auto& [k, v] : r.importance) rows.push_back({k, short_number(v)});
    os << html_table(rows);
  } else {
    os << "<p class=\"meta\">None: " << xml_escape(r.importance_missing.empty() ? "not computed" : r.importance_missing)
       << ". The slice plots above show each parameter's effect.</p>\n";
  }
  os << "<h2>Every trial</h2>\n" << html_table(trial_table(tune, r)) << "</body></html>\n";
  return os.str();
}

std::vector<std::string> write_tune_reports(const TuneManifest& tune, const TuneResults& results) {
  std::vector<std::string> paths;
  fs::create_directories(tune.runs_dir);
  const std::string report = (fs::path(tune.runs_dir) / "report.html").string();
  write_file_atomic(report, tune_report_html(tune, results));
  paths.push_back(report);
  if (auto best = best_trial(tune, results)) {
    const std::string path = (fs::path(tune.runs_dir) / "best.toml").string();
    write_file_atomic(path, best_manifest_toml(tune, *best));
    paths.push_back(path);
  }
  return paths;
}

}  // namespace hpt::host
