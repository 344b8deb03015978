#include "bench/bench_results.hpp"

#include "bench/json_fields.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

std::optional<boost::json::object> read_json_object(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  std::error_code ec;
  auto v = boost::json::parse(s.str(), ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v.as_object();
}

// The mean of a per-step figure in each bin of steps.
class BinnedCurve {
 public:
  explicit BinnedCurve(double bin_width) : bin_width_(bin_width) {}
  void add(double step, const boost::json::object& line, const char* key) {
    const auto* v = line.if_contains(key);
    if (v == nullptr || !v->is_number()) return;
    double y = v->to_number<double>();
    if (!std::isfinite(y)) return;
    auto& b = bins_[static_cast<std::int64_t>(std::max(0.0, step - 1) / bin_width_)];
    b.first += y;
    b.second += 1;
  }
  std::vector<CurvePoint> points() const {
    std::vector<CurvePoint> out;
    for (const auto& [bin, sum] : bins_)
      out.push_back({(static_cast<double>(bin) + 0.5) * bin_width_, sum.first / static_cast<double>(sum.second)});
    return out;
  }

 private:
  double bin_width_;
  std::map<std::int64_t, std::pair<double, std::int64_t>> bins_;
};

// Folds the step and rollback lines of metrics.jsonl into the record's loss, lr and
// gradient norm bins and its phase timeline.
class CurveBuilder {
 public:
  CurveBuilder(RunRecord& record, double bin_width) : r_(record), loss_(bin_width), lr_(bin_width), grad_norm_(bin_width) {}

  void step_line(const boost::json::object& line) {
    std::string kind = json_text(line, "kind");
    double step = json_number(line, "step", 0.0);
    if (kind == "probe") {
      r_.probes.push_back(x_);
      return;
    }
    double dx = std::max(1.0, step - cursor_);
    if (!r_.phases.empty() && r_.phases.back().kind == kind && r_.phases.back().end == x_) r_.phases.back().end = x_ + dx;
    else r_.phases.push_back({x_, x_ + dx, kind});
    x_ += dx;
    cursor_ = step;
    if (kind == "full" || kind == "correct") {
      loss_.add(step, line, "loss");
      lr_.add(step, line, "lr");
      grad_norm_.add(step, line, "grad_norm");
    }
  }

  void rollback_line(const boost::json::object& line) {
    r_.rollbacks.push_back(x_);
    cursor_ = json_number(line, "step", 0.0);
  }

  void finish() {
    r_.loss = loss_.points();
    r_.lr = lr_.points();
    r_.grad_norm = grad_norm_.points();
  }

 private:
  RunRecord& r_;
  double x_ = 0.0;       // step-equivalents executed so far
  double cursor_ = 0.0;  // the engine's step at the last line
  BinnedCurve loss_, lr_, grad_norm_;
};

bool is_final_status(const std::string& status) {
  return status == "completed" || status == "target_reached" || status == "early_stopped";
}

boost::json::object spread_json(const Spread& s) {
  boost::json::object o;
  o["count"] = s.count;
  if (s.count == 0) return o;
  o["median"] = s.median;
  o["min"] = s.min;
  o["max"] = s.max;
  return o;
}

boost::json::array pairwise_json(const std::vector<PairwiseSpeedup>& pairs) {
  boost::json::array a;
  for (const auto& p : pairs) {
    boost::json::object o{{"variant", p.variant}, {"against", p.against}};
    for (const auto& [key, value] : spread_json(p.ratio)) o[key] = value;
    a.push_back(std::move(o));
  }
  return a;
}

double figure_of(const TargetScore& s, TargetMeasure measure) {
  return measure == TargetMeasure::Seconds ? s.seconds : s.backward_passes;
}

// The variant's figure to target at each seed where its run finished, budget rule applied.
std::map<std::int64_t, double> figures_by_seed(const std::vector<RunRecord>& runs, const std::string& variant,
                                               TargetMeasure measure) {
  std::map<std::int64_t, double> out;
  for (const auto& r : runs)
    if (r.variant == variant && r.finished) out[r.seed] = figure_of(score_run(r.summary), measure);
  return out;
}

// theirs / mine at each seed both have, mine above 0 (a run with no figure is no ratio).
std::vector<double> seed_ratios(const std::map<std::int64_t, double>& mine, const std::map<std::int64_t, double>& theirs) {
  std::vector<double> out;
  for (const auto& [seed, m] : mine) {
    auto t = theirs.find(seed);
    if (t != theirs.end() && m > 0.0) out.push_back(t->second / m);
  }
  return out;
}

boost::json::array points_json(const std::vector<CurvePoint>& points) {
  boost::json::array a;
  for (const auto& p : points) a.push_back(boost::json::array{p.x, p.y});
  return a;
}

}  // namespace

RunRecord read_run(const std::string& variant, std::int64_t seed, const std::string& run_dir, std::size_t loss_points) {
  RunRecord r;
  r.variant = variant;
  r.seed = seed;
  r.run_dir = run_dir;
  r.name = fs::path(run_dir).filename().string();
  fs::path inside = fs::path(run_dir) / "output.log";
  r.log = fs::exists(inside) ? inside.string() : run_dir + ".log";
  r.ran = fs::exists(run_dir) || fs::exists(run_dir + ".log");
  if (auto s = read_json_object(fs::path(run_dir) / "summary.json")) {
    r.summary = *s;
    r.finished = is_final_status(json_text(r.summary, "status"));
  }
  double budget = std::max(1.0, json_number(r.summary, "max_steps", 1.0));
  CurveBuilder curves(r, std::max(1.0, std::ceil(budget / static_cast<double>(std::max<std::size_t>(1, loss_points)))));
  std::ifstream in(fs::path(run_dir) / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    std::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) continue;  // a line cut short by a crash
    const auto& o = v.as_object();
    std::string type = json_text(o, "type");
    if (type == "step") curves.step_line(o);
    else if (type == "rollback") curves.rollback_line(o);
    else if (type == "eval") r.evals.push_back(o);
  }
  curves.finish();
  return r;
}

TargetScore score_run(const boost::json::object& summary) {
  TargetScore s;
  const auto* seconds = summary.if_contains("seconds_to_target");
  s.reached = seconds && seconds->is_number();
  if (s.reached) {
    s.seconds = seconds->to_number<double>();
    s.steps = json_number(summary, "steps_to_target", 0.0);
    s.backward_passes = json_number(summary, "backward_passes_to_target", 0.0);
    return s;
  }
  double budget = json_number(summary, "max_steps", 0.0);
  double to_budget = budget / std::max(1.0, json_number(summary, "steps", 0.0));
  s.steps = 2.0 * budget;
  s.seconds = 2.0 * json_number(summary, "train_seconds", 0.0) * to_budget;
  s.backward_passes = 2.0 * json_number(summary, "backward_passes", 0.0) * to_budget;
  return s;
}

Spread spread(std::vector<double> values) {
  Spread s;
  s.count = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  std::size_t n = values.size();
  s.median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  s.min = values.front();
  s.max = values.back();
  return s;
}

std::vector<double> pair_ratios(const std::vector<RunRecord>& runs, const std::string& variant,
                                const std::string& against, TargetMeasure measure) {
  return seed_ratios(figures_by_seed(runs, variant, measure), figures_by_seed(runs, against, measure));
}

std::vector<double> speedups(const std::vector<RunRecord>& runs, const std::string& baseline,
                             const std::string& variant) {
  return pair_ratios(runs, variant, baseline, TargetMeasure::Seconds);
}

std::vector<PairwiseSpeedup> pairwise_speedups(const std::vector<RunRecord>& runs,
                                               const std::vector<std::string>& variants, TargetMeasure measure) {
  std::vector<std::map<std::int64_t, double>> figures;  // read once per variant, not once per pair
  for (const auto& v : variants) figures.push_back(figures_by_seed(runs, v, measure));
  std::vector<PairwiseSpeedup> out;
  for (std::size_t i = 0; i < variants.size(); ++i)
    for (std::size_t j = 0; j < variants.size(); ++j)
      if (i != j) out.push_back({variants[i], variants[j], spread(seed_ratios(figures[i], figures[j]))});
  return out;
}

std::optional<double> metric_at_step(const RunRecord& run, const std::string& metric, std::int64_t step) {
  for (const auto& e : run.evals) {
    const auto* s = e.if_contains("step");
    const auto* m = e.if_contains(metric);
    if (s && s->is_number() && m && m->is_number() && s->to_number<double>() >= static_cast<double>(step))
      return m->to_number<double>();
  }
  return std::nullopt;
}

VariantStats variant_stats(const std::vector<RunRecord>& runs, const std::string& variant,
                           const std::string& baseline, const std::string& metric, std::int64_t at_step) {
  VariantStats v;
  v.name = variant;
  v.metric = metric;
  std::vector<double> seconds, steps, backward, final_metric, at_step_metric, fraction, rollbacks;
  for (const auto& r : runs) {
    if (r.variant != variant) continue;
    ++v.runs;
    if (!r.finished) continue;
    ++v.finished;
    TargetScore s = score_run(r.summary);
    v.reached += s.reached ? 1 : 0;
    seconds.push_back(s.seconds);
    steps.push_back(s.steps);
    backward.push_back(s.backward_passes);
    if (const auto* m = r.summary.if_contains("final_metrics"); m && m->is_object())
      if (const auto* x = m->as_object().if_contains(metric); x && x->is_number()) final_metric.push_back(x->to_number<double>());
    if (at_step > 0)
      if (auto x = metric_at_step(r, metric, at_step)) at_step_metric.push_back(*x);
    fraction.push_back(json_number(r.summary, "predicted_fraction", 0.0));
    rollbacks.push_back(json_number(r.summary, "rollbacks", 0.0));
  }
  v.seconds = spread(seconds);
  v.steps = spread(steps);
  v.backward_passes = spread(backward);
  v.final_metric = spread(final_metric);
  v.metric_at_step = spread(at_step_metric);
  v.predicted_fraction = spread(fraction);
  v.rollbacks = spread(rollbacks);
  v.speedup = spread(speedups(runs, baseline, variant));
  return v;
}

MachineInfo this_machine() {
  MachineInfo m;
  struct utsname u {};
  if (::uname(&u) == 0) m.arch = u.machine;
  m.cores = std::thread::hardware_concurrency();
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon != std::string::npos) m.cpu_model = line.substr(line.find_first_not_of(" \t", colon + 1));
    break;
  }
  if (m.cpu_model.empty()) m.cpu_model = "unknown CPU";
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &utc);
  m.date = buf;
  return m;
}

boost::json::object results_json(const BenchResults& res) {
  boost::json::object o;
  boost::json::object bench;
  bench["name"] = res.name;
  bench["file"] = res.bench_file;
  bench["base"] = res.base;
  bench["baseline"] = res.baseline;
  bench["seeds"] = boost::json::value_from(res.seeds);
  bench["budget"] = res.budget;
  bench["target"] = {{"metric", res.target.metric},
                     {"value", res.target.value},
                     {"maximize", res.target.maximize},
                     {"min_steps", res.target.min_steps}};
  boost::json::array variants;
  for (std::size_t i = 0; i < res.variants.size(); ++i)
    variants.push_back({{"name", res.variants[i]}, {"overrides", boost::json::value_from(res.overrides[i])}});
  bench["variants"] = variants;
  bench["budget_rule"] =
      "a run that misses the target counts as 2 x budget steps, 2 x train_seconds x budget/steps seconds and "
      "2 x backward_passes x budget/steps backward passes";
  o["bench"] = bench;
  o["command"] = res.command;
  o["date"] = res.machine.date;
  o["machine"] = {{"arch", res.machine.arch}, {"cores", res.machine.cores}, {"cpu_model", res.machine.cpu_model}};

  boost::json::array runs;
  for (std::size_t i = 0; i < res.runs.size(); ++i) {
    const RunRecord& r = res.runs[i];
    boost::json::object j;
    j["order"] = i;
    j["variant"] = r.variant;
    j["seed"] = r.seed;
    j["name"] = r.name;
    j["run_dir"] = r.run_dir;
    j["log"] = r.log;
    j["ran"] = r.ran;
    j["finished"] = r.finished;
    if (r.exit_code) j["exit_code"] = *r.exit_code;
    j["summary"] = r.summary;
    if (r.finished) {
      TargetScore s = score_run(r.summary);
      j["score"] = {{"reached", s.reached}, {"seconds", s.seconds}, {"steps", s.steps}, {"backward_passes", s.backward_passes}};
    }
    boost::json::array evals;
    for (const auto& e : r.evals) evals.push_back(e);
    j["evals"] = evals;
    j["train_loss"] = points_json(r.loss);
    j["lr"] = points_json(r.lr);
    j["grad_norm"] = points_json(r.grad_norm);
    boost::json::array phases;
    for (const auto& p : r.phases) phases.push_back(boost::json::array{p.begin, p.end, boost::json::string(p.kind)});
    j["phases"] = phases;
    j["probes"] = boost::json::value_from(r.probes);
    j["rollbacks"] = boost::json::value_from(r.rollbacks);
    runs.push_back(j);
  }
  o["runs"] = runs;

  boost::json::array stats;
  for (const auto& v : res.stats) {
    stats.push_back({{"variant", v.name},
                     {"runs", v.runs},
                     {"finished", v.finished},
                     {"reached", v.reached},
                     {"seconds_to_target", spread_json(v.seconds)},
                     {"steps_to_target", spread_json(v.steps)},
                     {"backward_passes_to_target", spread_json(v.backward_passes)},
                     {"final_metric", spread_json(v.final_metric)},
                     {"metric_at_step", spread_json(v.metric_at_step)},
                     {"predicted_fraction", spread_json(v.predicted_fraction)},
                     {"rollbacks", spread_json(v.rollbacks)},
                     {"speedup", spread_json(v.speedup)}});
  }
  o["variants"] = stats;
  o["pairwise_speedups"] = pairwise_json(res.pairwise_seconds);
  o["pairwise_backward_passes"] = pairwise_json(res.pairwise_backward_passes);
  return o;
}

}  // namespace hpt::host
