#include "bench/bench_report.hpp"

#include "bench/json_fields.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <optional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "bench/svg_plot.hpp"
#include "config/averaging_settings.hpp"
#include "output/run_directory.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kLossPoints = 400;  // loss curve bins per run
constexpr int kPlotWidth = 1180;

const std::vector<std::string> kPalette = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                           "#E69F00", "#56B4E9", "#000000", "#8C564B"};
const std::vector<std::pair<std::string, std::string>> kPhaseColors = {
    {"full", "#4e79a7"}, {"predicted", "#59a14f"}, {"correct", "#f28e2b"}};
const char* kProbeColor = "#7b3294";
const char* kRollbackColor = "#d62728";

std::string color_of(const BenchResults& r, const std::string& variant) {
  auto it = std::find(r.variants.begin(), r.variants.end(), variant);
  return kPalette[static_cast<std::size_t>(it - r.variants.begin()) % kPalette.size()];
}

std::string phase_color(const std::string& kind) {
  for (const auto& [k, c] : kPhaseColors)
    if (k == kind) return c;
  return "#999999";
}

double report_number(const boost::json::object& o, const char* key) {
  return json_number(o, key, std::numeric_limits<double>::quiet_NaN());
}

// "12.3 (10.1–15.0)", or "—" without data; `scale` multiplies every value (100 for %).
std::string cell(const Spread& s, double scale = 1.0) {
  if (s.count == 0) return "—";
  std::string m = short_number(s.median * scale);
  if (s.count == 1 || s.min == s.max) return m;
  return m + " (" + short_number(s.min * scale) + "–" + short_number(s.max * scale) + ")";
}

std::string goal_text(const MetricGoal& g) {
  return g.metric + (g.maximize ? " ≥ " : " ≤ ") + short_number(g.value);
}

std::string machine_text(const MachineInfo& m) {
  return m.arch + ", " + std::to_string(m.cores) + " cores, " + m.cpu_model;
}

// Per variant: (median, min, max) over its runs' curves.
struct MetricCurve {
  std::vector<CurvePoint> median, lower, upper;
};

// `hold`: at each x where any run has a point, each run holds its latest point (runs
// without one yet left out), as for evaluations that come at different times; otherwise
// only the runs with a point at that very x count, as for bins that line up across seeds.
MetricCurve median_band(const std::vector<std::vector<CurvePoint>>& curves, bool hold) {
  std::map<double, std::vector<double>> at;
  if (hold) {
    std::set<double> xs;
    for (const auto& c : curves)
      for (const auto& p : c) xs.insert(p.x);
    for (double x : xs)
      for (const auto& c : curves) {
        auto after = std::upper_bound(c.begin(), c.end(), x, [](double v, const CurvePoint& p) { return v < p.x; });
        if (after != c.begin()) at[x].push_back(std::prev(after)->y);
      }
  } else {
    for (const auto& c : curves)
      for (const auto& p : c) at[p.x].push_back(p.y);
  }
  MetricCurve out;
  for (const auto& [x, values] : at) {
    Spread s = spread(values);
    out.median.push_back({x, s.median});
    out.lower.push_back({x, s.min});
    out.upper.push_back({x, s.max});
  }
  return out;
}

// A run's evaluations of `metric` against `x_key` ("train_seconds" or "step").
std::vector<CurvePoint> eval_curve(const RunRecord& r, const std::string& x_key, const std::string& metric) {
  std::vector<CurvePoint> c;
  for (const auto& e : r.evals) {
    double x = report_number(e, x_key.c_str()), v = report_number(e, metric.c_str());
    if (std::isfinite(x) && std::isfinite(v)) c.push_back({x, v});
  }
  std::stable_sort(c.begin(), c.end(), [](const CurvePoint& a, const CurvePoint& b) { return a.x < b.x; });
  return c;
}

std::vector<CurvePoint> finite_points(const std::vector<CurvePoint>& points) {
  std::vector<CurvePoint> out;
  for (const auto& p : points)
    if (std::isfinite(p.x) && std::isfinite(p.y)) out.push_back(p);
  return out;
}

// A plot of one figure against steps or time: per variant one thin line per seed, the
// min–max band over seeds above them and the median on top.
struct CurvePlot {
  std::string id, title, x_label, y_label;
  std::function<std::vector<CurvePoint>(const RunRecord&)> curve_of;
  bool hold = false;                // median_band's `hold`
  bool log_when_wide = false;       // log y when the values span more than 10x
  std::optional<MetricGoal> target;  // a dashed line at the target value
};

std::vector<const RunRecord*> runs_of(const BenchResults& r, const std::string& variant) {
  std::vector<const RunRecord*> out;
  for (const auto& run : r.runs)
    if (run.variant == variant) out.push_back(&run);
  return out;
}

// The plot, or "" when no run has a point of it (a task without val_loss, runs not run).
std::string plot_curves(const BenchResults& r, const CurvePlot& spec) {
  std::vector<std::vector<std::vector<CurvePoint>>> per_seed;  // [variant][run] -> curve
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, x_max = 0;
  for (const auto& v : r.variants) {
    per_seed.emplace_back();
    for (const auto* run : runs_of(r, v)) {
      per_seed.back().push_back(finite_points(spec.curve_of(*run)));
      for (const auto& p : per_seed.back().back()) lo = std::min(lo, p.y), hi = std::max(hi, p.y), x_max = std::max(x_max, p.x);
    }
  }
  if (!std::isfinite(lo)) return "";
  if (spec.target) lo = std::min(lo, spec.target->value), hi = std::max(hi, spec.target->value);
  const bool log = spec.log_when_wide && lo > 0 && hi / lo > 10;
  SvgPlot plot(spec.id, kPlotWidth, 440, spec.title, spec.x_label, spec.y_label + (log ? " (log scale)" : ""));
  plot.x_range(0, x_max * 1.02);
  if (log) plot.y_range(lo * 0.9, hi * 1.1, true);
  else if (spec.target || lo < 0) plot.y_range(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), false);
  else plot.y_range(0.0, hi * 1.05, false);
  // Drawn in layers: every seed's line, then every band, then every median.
  std::vector<MetricCurve> bands;
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    auto runs = runs_of(r, r.variants[i]);
    for (std::size_t k = 0; k < runs.size(); ++k) plot.seed_line(per_seed[i][k], color_of(r, r.variants[i]), runs[k]->name);
    bands.push_back(median_band(per_seed[i], spec.hold));
  }
  for (std::size_t i = 0; i < r.variants.size(); ++i) plot.band(bands[i].lower, bands[i].upper, color_of(r, r.variants[i]));
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    plot.line(bands[i].median, color_of(r, r.variants[i]), 2.2);
    plot.legend(r.variants[i] + " (median)", color_of(r, r.variants[i]), SvgPlot::Swatch::Line);
  }
  plot.legend("min–max over seeds", "#555", SvgPlot::Swatch::Band);
  plot.legend("one seed", "#555", SvgPlot::Swatch::ThinLine);
  if (spec.target) plot.reference(spec.target->value, "target " + goal_text(*spec.target));
  return plot.render();
}

std::string plot_phase_timeline(const BenchResults& r, const std::string& letter) {
  // Every run, variant by variant, seed by seed.
  std::vector<const RunRecord*> shown;
  std::vector<std::string> rows;
  double x_max = 0;
  for (const auto& v : r.variants) {
    for (const auto* run : runs_of(r, v)) {
      shown.push_back(run);
      rows.push_back(v + " · seed " + std::to_string(run->seed));
      if (!run->phases.empty()) x_max = std::max(x_max, run->phases.back().end);
    }
  }
  const int row_height = rows.size() <= 4 ? 60 : 34;
  SvgPlot plot("phases", kPlotWidth, 120 + row_height * static_cast<int>(std::max<std::size_t>(1, rows.size())),
               "(" + letter + ") phase timeline of every run: which steps were full, predicted, probe, correct, rolled back",
               "step-equivalents executed (discarded predictions included; resolution: run.log_every)", "");
  plot.y_rows(rows);
  plot.x_range(0, x_max * 1.01);
  for (std::size_t row = 0; row < shown.size(); ++row) {
    if (shown[row]->phases.empty()) plot.note(row, 0, shown[row]->ran ? "no steps recorded" : "not run");
    for (const auto& s : shown[row]->phases)
      plot.span(row, s.begin, s.end, phase_color(s.kind), 0.4,
                s.kind + ": steps " + short_number(s.begin) + "–" + short_number(s.end));
    for (double x : shown[row]->probes) plot.tick(row, x, kProbeColor);
    for (double x : shown[row]->rollbacks) plot.marker(row, x, kRollbackColor);
  }
  for (const auto& [kind, color] : kPhaseColors) plot.legend(kind, color, SvgPlot::Swatch::Box);
  plot.legend("probe", kProbeColor, SvgPlot::Swatch::Tick);
  plot.legend("roll-back", kRollbackColor, SvgPlot::Swatch::Marker);
  return plot.render();
}

std::string plot_time_to_target(const BenchResults& r, std::size_t seeds) {
  double x_max = 0;
  for (const auto& s : r.stats) x_max = std::max(x_max, s.seconds.max);
  SvgPlot plot("time-to-target", kPlotWidth, 120 + 72 * static_cast<int>(r.variants.size()),
               "(a) training time to " + goal_text(r.target) + " (median bar, min–max whisker, one dot per seed)",
               "training wall-clock time to target (s); a run that missed counts as 2 × its time scaled to the budget",
               "");
  plot.y_rows(r.variants);
  plot.x_range(0, x_max * 1.05);
  for (std::size_t row = 0; row < r.stats.size(); ++row) {
    const VariantStats& s = r.stats[row];
    std::string c = color_of(r, s.name);
    if (s.seconds.count == 0) {
      bool ran = std::any_of(r.runs.begin(), r.runs.end(), [&](const RunRecord& run) { return run.variant == s.name && run.ran; });
      plot.note(row, 0, ran ? "no finished run" : "not run");
      continue;
    }
    plot.span(row, 0, s.seconds.median, c, 0.4, s.name + ": median " + short_number(s.seconds.median) + " s");
    plot.whisker(row, s.seconds.min, s.seconds.max);
    for (const auto* run : runs_of(r, s.name)) {
      if (!run->finished) continue;
      TargetScore t = score_run(run->summary);
      plot.dot(row, t.seconds, !t.reached,
               run->name + ": " + short_number(t.seconds) + " s" + (t.reached ? "" : " (missed the target)"));
    }
    std::string text = "median " + short_number(s.seconds.median) + " s";
    if (s.name != r.baseline && s.speedup.count) text += " · " + speedup_headline(s, r.baseline, seeds);
    text += " · " + std::to_string(s.reached) + "/" + std::to_string(s.finished) + " reached the target";
    plot.note(row, 0, text);
  }
  plot.legend("a seed that reached the target", "#222", SvgPlot::Swatch::Dot);
  plot.legend("a seed that missed it (budget rule)", "#222", SvgPlot::Swatch::HollowDot);
  return plot.render();
}

// The variant's target metric (its target_metric, or the bench's).
std::string variant_metric(const BenchResults& r, const std::string& variant) {
  for (const auto& s : r.stats)
    if (s.name == variant && !s.metric.empty()) return s.metric;
  return r.target.metric;
}

// `key` measured on the weights the variant is judged on: "avg.<key>" when its target
// metric is one of the weight average's.
std::string judged_key(const BenchResults& r, const std::string& variant, const std::string& key) {
  return variant_metric(r, variant).rfind(kAveragedMetricPrefix, 0) == 0 ? kAveragedMetricPrefix + key : key;
}

// The final metric's column name: the bench's target metric, or "target metric" when a
// variant reads its own (its target_metric, named in the Variants list).
std::string final_metric_name(const BenchResults& r) {
  for (const auto& s : r.stats)
    if (!s.metric.empty() && s.metric != r.target.metric) return "target metric";
  return r.target.metric;
}

// The per-variant table as rows of cells (header first).
std::vector<std::vector<std::string>> variant_table(const BenchResults& r) {
  const bool at_step = r.target.min_steps > 0;
  std::vector<std::vector<std::string>> rows = {
      {"variant", "reached target", "time to target (s)", "steps to target", "backward passes to target",
       "final " + final_metric_name(r), "predicted steps (%)", "roll-backs", "speedup vs " + r.baseline}};
  if (at_step) rows[0].insert(rows[0].begin() + 6, r.target.metric + " at step " + std::to_string(r.target.min_steps));
  for (const auto& s : r.stats) {
    rows.push_back({s.name, std::to_string(s.reached) + "/" + std::to_string(s.runs), cell(s.seconds), cell(s.steps),
                    cell(s.backward_passes), cell(s.final_metric), cell(s.predicted_fraction, 100.0),
                    cell(s.rollbacks), s.name == r.baseline ? "1 (baseline)" : cell(s.speedup)});
    if (at_step) rows.back().insert(rows.back().begin() + 6, cell(s.metric_at_step));
  }
  return rows;
}

std::vector<std::vector<std::string>> run_table(const BenchResults& r) {
  const bool at_step = r.target.min_steps > 0;
  std::vector<std::vector<std::string>> rows = {{"#", "run", "status", "time to target (s)", "steps to target",
                                                 "backward passes", "final " + final_metric_name(r), "predicted (%)",
                                                 "roll-backs", "log"}};
  if (at_step) rows[0].insert(rows[0].begin() + 7, r.target.metric + " at step " + std::to_string(r.target.min_steps));
  for (std::size_t i = 0; i < r.runs.size(); ++i) {
    const RunRecord& run = r.runs[i];
    std::vector<std::string> row = {std::to_string(i + 1), run.name};
    if (!run.finished) {
      std::string status = run.exit_code ? "failed (exit " + std::to_string(*run.exit_code) + ")"
                           : run.ran     ? "not finished"
                                         : "not run";
      row.insert(row.end(), {status, "—", "—", "—", "—", "—", "—", run.log});
      if (at_step) row.insert(row.begin() + 7, "—");
      rows.push_back(row);
      continue;
    }
    TargetScore t = score_run(run.summary);
    auto summary_text = [&](const char* key) {
      const auto* v = run.summary.if_contains(key);
      return v && v->is_string() ? std::string(v->as_string()) : std::string("?");
    };
    double final_metric = std::numeric_limits<double>::quiet_NaN();
    if (const auto* m = run.summary.if_contains("final_metrics"); m && m->is_object())
      final_metric = report_number(m->as_object(), variant_metric(r, run.variant).c_str());
    std::string miss = t.reached ? "" : " (missed: 2× budget)";
    row.insert(row.end(), {summary_text("status"), short_number(t.seconds) + miss, short_number(t.steps),
                           short_number(t.backward_passes), std::isfinite(final_metric) ? short_number(final_metric) : "—",
                           short_number(100.0 * report_number(run.summary, "predicted_fraction")),
                           short_number(report_number(run.summary, "rollbacks")), run.log});
    if (at_step) {
      std::optional<double> x = metric_at_step(run, variant_metric(r, run.variant), r.target.min_steps);
      row.insert(row.begin() + 7, x ? short_number(*x) : "—");
    }
    rows.push_back(row);
  }
  return rows;
}

// A pairwise cell: "1.23x (1.10-1.40)" (median, then min-max over seeds), "1.23x" for
// one seed, "-" for none.
std::string ratio_cell(const Spread& s) {
  if (s.count == 0) return "-";
  auto ratio = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return std::string(buf);
  };
  if (s.count == 1 || s.min == s.max) return ratio(s.median) + "x";
  return ratio(s.median) + "x (" + ratio(s.min) + "-" + ratio(s.max) + ")";
}

// The pairwise matrix as rows of cells (header first): a row per variant, a column per
// variant ("vs <name>"), "-" on the diagonal.
std::vector<std::vector<std::string>> pairwise_table(const BenchResults& r, const std::vector<PairwiseSpeedup>& pairs) {
  std::vector<std::vector<std::string>> rows = {{"variant"}};
  for (const auto& v : r.variants) rows[0].push_back("vs " + v);
  for (const auto& row : r.variants) {
    rows.push_back({row});
    for (const auto& column : r.variants) {
      auto p = std::find_if(pairs.begin(), pairs.end(),
                            [&](const PairwiseSpeedup& x) { return x.variant == row && x.against == column; });
      rows.back().push_back(p == pairs.end() ? "-" : ratio_cell(p->ratio));
    }
  }
  return rows;
}

const char* kPairwiseSecondsText =
    "Every variant against every other: a cell is the column variant's training time to target over the row "
    "variant's, seed by seed where both finished (a miss counts by the budget rule), then median (min-max) over "
    "those seeds; above 1, the row variant is faster. \"-\": the same variant, or no seed where both finished.";
const char* kPairwiseBackwardText =
    "The same in backward passes to target, the measure that does not depend on the hardware (a hybrid's "
    "predicted steps need none); above 1, the row variant needs fewer.";

std::string markdown_table(const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream os;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    os << "|";
    for (const auto& c : rows[i]) os << " " << c << " |";
    os << "\n";
    if (i == 0) {
      os << "|";
      for (std::size_t j = 0; j < rows[i].size(); ++j) os << (j == 0 ? " --- |" : " ---: |");
      os << "\n";
    }
  }
  return os.str();
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

// The headline of every variant but the baseline, one per line.
std::vector<std::string> headlines(const BenchResults& r) {
  std::vector<std::string> out;
  for (const auto& s : r.stats)
    if (s.name != r.baseline) out.push_back(s.name + ": " + speedup_headline(s, r.baseline, r.seeds.size()));
  return out;
}

// Per seed, the baseline's time over the variant's: "1.12–1.99", or "" for one seed.
std::string speedup_range_text(const VariantStats& s) {
  if (s.speedup.count < 2) return "";
  return short_number(s.speedup.min) + "–" + short_number(s.speedup.max);
}

std::string budget_rule_text(const BenchResults& r) {
  return "Budget: " + std::to_string(r.budget) +
         " step-equivalents per run. A run that never reaches the target counts as twice the budget (NiNo's rule): " +
         std::to_string(2 * r.budget) +
         " steps, 2 × its training time scaled to the budget (train_seconds × budget / steps), and 2 × its backward "
         "passes scaled the same way. Speedup: the baseline's time to target over the variant's, run by run within "
         "each seed, then median (min–max) over seeds. Final metric: the last evaluation, at the target or the budget.";
}

std::string failed_runs_text(const BenchResults& r) {
  std::string out;
  for (const auto& run : r.runs)
    if (!run.finished)
      out += "- " + run.name + ": " +
             (run.exit_code ? "failed with exit code " + std::to_string(*run.exit_code) + "; log: " + run.log
              : run.ran     ? "not finished; log: " + run.log
                            : std::string("not run (run `hpt bench` without --report-only to run it)")) +
             "\n";
  return out;
}

}  // namespace

std::string speedup_headline(const VariantStats& s, const std::string& baseline, std::size_t seeds) {
  if (s.speedup.count == 0) return "no seed where both it and " + baseline + " ran to the end";
  const double m = s.speedup.median;
  char ratio[32];
  std::string text;
  if (!(m > 0)) {
    text = "no speed figure against " + baseline;
  } else if (std::abs(m - 1.0) < 0.005) {
    text = "as fast as " + baseline;
  } else {
    std::snprintf(ratio, sizeof ratio, "%.2fx", m > 1.0 ? m : 1.0 / m);
    text = std::string(ratio) + (m > 1.0 ? " faster than " : " slower than ") + baseline;
  }
  std::string of = s.speedup.count == seeds ? std::to_string(seeds) : std::to_string(s.speedup.count) + " of " + std::to_string(seeds);
  text += s.speedup.count == 1 ? " (" + of + " seed" + (seeds == 1 ? "" : "s") + ")" : " (median of " + of + " seeds)";
  return text;
}

BenchResults collect_results(const BenchManifest& bench, const std::vector<PlannedRun>& runs,
                             const std::vector<RunOutcome>& outcomes, const std::string& command) {
  BenchResults r;
  r.name = bench.name;
  r.bench_file = bench.path;
  r.base = bench.base;
  r.baseline = bench.baseline;
  for (const auto& v : bench.variants) {
    r.variants.push_back(v.name);
    r.overrides.push_back(v.overrides);
  }
  r.seeds = bench.seeds;
  r.budget = runs.front().resolved.run.max_steps;
  r.target = *runs.front().resolved.run.target;
  r.command = command;
  r.machine = this_machine();
  for (const auto& p : runs) {
    RunRecord rec = read_run(p.variant, p.seed, p.run_dir, kLossPoints);
    for (const auto& o : outcomes)
      if (o.name == p.name && !o.skipped) rec.exit_code = o.exit_code;
    r.runs.push_back(std::move(rec));
  }
  for (const auto& v : r.variants) {
    // A variant's own target_metric (e.g. avg.val_accuracy for an averaged baseline) is
    // the metric its final value and its value at min_steps are read from.
    std::string metric = r.target.metric;
    for (const auto& p : runs)
      if (p.variant == v && p.resolved.run.target) {
        metric = p.resolved.run.target->metric;
        break;
      }
    r.stats.push_back(variant_stats(r.runs, v, r.baseline, metric, r.target.min_steps));
  }
  r.pairwise_seconds = pairwise_speedups(r.runs, r.variants, TargetMeasure::Seconds);
  r.pairwise_backward_passes = pairwise_speedups(r.runs, r.variants, TargetMeasure::BackwardPasses);
  return r;
}

std::string report_markdown(const BenchResults& r) {
  std::ostringstream os;
  os << "# Bench " << r.name << ": time to " << goal_text(r.target) << "\n\n";
  os << "- date: " << r.machine.date << "\n";
  os << "- machine: " << machine_text(r.machine) << "\n";
  os << "- command: `" << r.command << "`\n";
  os << "- bench file: " << r.bench_file << "; base manifest: " << r.base << "\n";
  os << "- seeds:";
  for (auto s : r.seeds) os << " " << s;
  os << "; baseline: " << r.baseline << "\n\n";
  for (const auto& h : headlines(r)) os << "**" << h << "**  \n";
  if (!headlines(r).empty()) os << "\n";
  os << "Median (min–max) over seeds.\n\n" << markdown_table(variant_table(r)) << "\n";
  os << budget_rule_text(r) << "\n\n";
  os << "## Speedups run by run\n\n" << kPairwiseSecondsText << "\n\n"
     << markdown_table(pairwise_table(r, r.pairwise_seconds)) << "\n"
     << kPairwiseBackwardText << "\n\n" << markdown_table(pairwise_table(r, r.pairwise_backward_passes)) << "\n";
  os << "## Variants\n\n";
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    os << "- " << r.variants[i] << ":";
    if (r.overrides[i].empty()) os << " the base manifest as it is";
    for (const auto& o : r.overrides[i]) os << " `" << o << "`";
    if (i < r.stats.size() && !r.stats[i].metric.empty() && r.stats[i].metric != r.target.metric)
      os << "; target on " << r.stats[i].metric;
    os << "\n";
  }
  std::string failed = failed_runs_text(r);
  if (!failed.empty()) os << "\n## Runs that did not finish\n\n" << failed;
  os << "\n## Every run, in the order they ran\n\n" << markdown_table(run_table(r));
  return os.str();
}

const char* report_css() {
  return "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}\n"
         "h1{font-size:22px;margin:0 0 8px}\n"
         ".meta{color:#555;font-size:13px;line-height:1.5}\n"
         ".headline{font-size:16px;margin:12px 0}\n"
         "figure{margin:18px 0}\n"
         "figcaption{font-size:13px;color:#444;margin-top:4px}\n"
         "table{border-collapse:collapse;font-size:13px;margin:8px 0}\n"
         "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\n"
         "th:first-child,td:first-child{text-align:left}\n"
         "th{background:#f2f2f2}\n"
         "code{background:#f4f4f4;padding:1px 4px}\n";
}

std::string report_html(const BenchResults& r) {
  std::ostringstream os;
  std::string title = "Bench " + r.name + ": time to " + goal_text(r.target);
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << xml_escape(title) << "</title>\n"
     << "<style>\n" << report_css() << "</style></head><body>\n";
  os << "<h1>" << xml_escape(title) << "</h1>\n";
  os << "<div class=\"meta\">" << xml_escape(r.machine.date) << " · " << xml_escape(machine_text(r.machine))
     << "<br>command: <code>" << xml_escape(r.command) << "</code><br>base manifest: " << xml_escape(r.base)
     << " · seeds:";
  for (auto s : r.seeds) os << " " << s;
  os << " · budget: " << r.budget << " step-equivalents · baseline: " << xml_escape(r.baseline) << "</div>\n";
  os << "<div class=\"headline\">";
  for (const auto& s : r.stats) {
    if (s.name == r.baseline) continue;
    os << "<div><b>" << xml_escape(s.name) << "</b>: " << xml_escape(speedup_headline(s, r.baseline, r.seeds.size()))
       << " <span class=\"meta\">(training time to " << xml_escape(goal_text(r.target));
    std::string range = speedup_range_text(s);
    if (!range.empty()) os << "; per seed, " << xml_escape(r.baseline) << "'s time over its time: " << xml_escape(range);
    os << ")</span></div>\n";
  }
  os << "</div>\n";
  // Figures, lettered in the order they appear (a plot without data is left out).
  char letter = 'a';
  auto figure = [&](const std::string& svg, const std::string& caption) {
    if (svg.empty()) return;
    os << "<figure>" << svg << "<figcaption>" << xml_escape(caption) << "</figcaption></figure>\n";
    ++letter;
  };
  auto lettered = [&](const std::string& text) { return "(" + std::string(1, letter) + ") " + text; };
  const std::string& metric = r.target.metric;
  const std::string step_axis = "step (real and predicted steps kept)";
  figure(plot_time_to_target(r, r.seeds.size()),
         "Each dot is one seed; hollow dots missed the target and count by the budget rule.");
  figure(plot_curves(r, {"metric-time", lettered(metric + " against training time"),
                         "training wall-clock time (s, evaluation excluded)", metric,
                         [&](const RunRecord& run) {
                           return eval_curve(run, "train_seconds", variant_metric(r, run.variant));
                         },
                         true, false,
                         r.target}),
         "Each run holds its latest evaluation; thin lines: one per seed; thick line: median over seeds; band: min–max.");
  figure(plot_curves(r, {"val-loss-step", lettered("validation loss against step"), step_axis, "val_loss",
                         [&](const RunRecord& run) { return eval_curve(run, "step", judged_key(r, run.variant, "val_loss")); },
                         true, true,
                         metric == "val_loss" ? std::optional<MetricGoal>(r.target) : std::nullopt}),
         "val_loss at each evaluation; thin lines: one per seed; thick line: median over seeds; band: min–max.");
  figure(plot_curves(r, {"loss-step", lettered("training loss against step"), step_axis,
                         "training loss (full and correct steps)", [](const RunRecord& run) { return run.loss; }, false,
                         true, std::nullopt}),
         "Mean training loss of the real (full and correct) steps in each bin of steps; thin lines: one per seed; "
         "thick line: median; band: min–max over seeds.");
  figure(plot_curves(r, {"lr-step", lettered("learning rate against step"), step_axis, "learning rate",
                         [](const RunRecord& run) { return run.lr; }, false, true, std::nullopt}),
         "The optimizer's learning rate at the real steps, mean per bin of steps; thin lines: one per seed.");
  figure(plot_curves(r, {"grad-norm-step", lettered("gradient norm against step"), step_axis,
                         "gradient norm (full and correct steps)", [](const RunRecord& run) { return run.grad_norm; },
                         false, true, std::nullopt}),
         "The gradient norm of the real steps, mean per bin of steps; thin lines: one per seed; thick line: median; "
         "band: min–max over seeds.");
  figure(plot_phase_timeline(r, std::string(1, letter)),
         "One row per run. Colored stretches: the kind of step that ran; ticks above: probe evaluations; triangles "
         "below: roll-backs (the predicted steps before them were discarded).");
  os << "<h2>Per variant</h2>\n<p class=\"meta\">Median (min–max) over seeds.</p>\n" << html_table(variant_table(r));
  os << "<p class=\"meta\">" << xml_escape(budget_rule_text(r)) << "</p>\n";
  os << "<h2>Speedups run by run</h2>\n<p class=\"meta\">" << xml_escape(kPairwiseSecondsText) << "</p>\n"
     << html_table(pairwise_table(r, r.pairwise_seconds)) << "<p class=\"meta\">" << xml_escape(kPairwiseBackwardText)
     << "</p>\n" << html_table(pairwise_table(r, r.pairwise_backward_passes));
  std::string failed = failed_runs_text(r);
  if (!failed.empty()) os << "<h2>Runs that did not finish</h2>\n<pre>" << xml_escape(failed) << "</pre>\n";
  os << "<h2>Every run, in the order they ran</h2>\n" << html_table(run_table(r));
  os << "</body></html>\n";
  return os.str();
}

std::vector<std::string> write_bench_reports(const BenchResults& results, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::string> paths = {(fs::path(dir) / "results.json").string(), (fs::path(dir) / "report.md").string(),
                                    (fs::path(dir) / "report.html").string()};
  write_file_atomic(paths[0], boost::json::serialize(results_json(results)) + "\n");
  write_file_atomic(paths[1], report_markdown(results));
  write_file_atomic(paths[2], report_html(results));
  return paths;
}

}  // namespace hpt::host
