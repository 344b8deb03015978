#include "engine.hpp"

#include "checkpoint_snapshot.hpp"
#include "checkpoint_tools.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>

#include <cmath>
#include <cstdio>
#include <future>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/utils.h>
#include <spdlog/spdlog.h>

namespace hpt::host {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

std::string archive_bytes(const std::function<void(torch::serialize::OutputArchive&)>& write) {
  torch::serialize::OutputArchive archive;
  write(archive);
  return archive_bytes(archive);
}

void read_archive(const std::string& bytes, const std::function<void(torch::serialize::InputArchive&)>& read) {
  torch::serialize::InputArchive archive;
  std::istringstream is(bytes);
  archive.load_from(is);
  read(archive);
}

// The checkpoint files, in the order they are written and read.
const char* kStateFiles[] = {"model.pt", "optimizer.pt", "task.pt", "dynamics.pt", "correction.pt", "phase.pt",
                             "backend.pt", "engine.pt"};

torch::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::atomic<int> g_pending_signal{0};

extern "C" void on_stop_signal(int signal) { g_pending_signal.store(signal); }

}  // namespace

Interrupted::Interrupted(int sig)
    : std::runtime_error(std::string("interrupted by ") + (sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal")),
      signal(sig) {}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

ParameterLayout make_layout(const torch::nn::Module& model) {
  ParameterLayout layout;
  for (const auto& item : model.named_parameters(true)) {
    const std::string& name = item.key();
    std::size_t dot = name.rfind('.');
    std::string group = dot == std::string::npos ? name : name.substr(0, dot);
    std::size_t g = 0;
    while (g < layout.group_names.size() && layout.group_names[g] != group) ++g;
    if (g == layout.group_names.size()) {
      layout.group_names.push_back(group);
      layout.groups.emplace_back();
    }
    layout.groups[g].push_back(layout.names.size());
    layout.group_of.push_back(g);
    layout.names.push_back(name);
    layout.shapes.push_back(item.value().sizes().vec());
  }
  return layout;
}

boost::json::object RunSummary::to_json() const {
  boost::json::object o;
  o["status"] = status;
  o["run_dir"] = run_dir;
  o["steps"] = steps;
  o["real_steps"] = real_steps;
  o["predicted_steps"] = predicted_steps;
  o["predicted_discarded"] = predicted_discarded;
  o["predicted_fraction"] = steps > 0 ? static_cast<double>(predicted_steps) / static_cast<double>(steps) : 0.0;
  o["probes"] = probes;
  o["rollbacks"] = rollbacks;
  o["divergence_rollbacks"] = divergence_rollbacks;
  o["forward_passes"] = forward_passes;
  o["backward_passes"] = backward_passes;
  o["train_seconds"] = train_seconds;
  o["eval_seconds"] = eval_seconds;
  o["checkpoint_seconds"] = checkpoint_seconds;
  o["checkpoint_stall_seconds"] = checkpoint_stall_seconds;
  o["evaluations"] = evaluations;
  auto opt = [](const auto& v) -> boost::json::value {
    if (v) return boost::json::value(*v);
    return nullptr;
  };
  o["seconds_to_target"] = opt(seconds_to_target);
  o["steps_to_target"] = opt(steps_to_target);
  o["backward_passes_to_target"] = opt(backward_passes_to_target);
  boost::json::object m;
  for (const auto& [k, v] : final_metrics) m[k] = v;
  o["final_metrics"] = m;
  return o;
}

// Progress on the terminal: a bar redrawn in place on a TTY, a plain log line every
// few seconds otherwise.
struct Engine::Progress {
  bool tty = false;
  Clock::time_point started = Clock::now();
  Clock::time_point last = Clock::now() - std::chrono::hours(1);
  std::string last_eval;

  void update(const TrainingState& s, const spdlog::logger& log, bool final) {
    double since = std::chrono::duration<double>(Clock::now() - last).count();
    if (!final && since < (tty ? 0.25 : 10.0)) return;
    last = Clock::now();
    double elapsed = std::chrono::duration<double>(last - started).count();
    double rate = elapsed > 0 ? static_cast<double>(s.step) / elapsed : 0.0;
    double eta = rate > 0 ? static_cast<double>(s.max_steps - s.step) / rate : 0.0;
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld  %.1f steps/s  loss %.4f%s%s  ETA %.0fs",
                  static_cast<long long>(s.step), static_cast<long long>(s.max_steps), rate, s.last_loss,
                  last_eval.empty() ? "" : "  ", last_eval.c_str(), eta);
    if (tty) {
      int width = 24;
      int filled = s.max_steps > 0 ? static_cast<int>(width * s.step / s.max_steps) : 0;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.resize(static_cast<std::size_t>(width), '.');
      std::fprintf(stderr, "\r[%s] %s\x1b[K%s", bar.c_str(), line, final ? "\n" : "");
      std::fflush(stderr);
    } else {
      const_cast<spdlog::logger&>(log).info("{}", line);
    }
  }
};

Engine::Engine(ResolvedManifest manifest, PluginLoader& loader, EngineOptions options)
    : manifest_(std::move(manifest)),
      options_(options),
      monitor_(DivergenceSettings::from(manifest_.run.divergence)) {
  const RunConfig& run = manifest_.run;
  if (options_.write_run_dir) dir_ = std::make_unique<RunDirectory>(run.runs_dir, run.name, run.resume, options_.overwrite);
  logger_ = make_run_logger(dir_ ? dir_->path() : "", run.log_level);
  if (dir_) dir_->write_file("config.resolved.toml", manifest_.to_toml());

  context_.logger = logger_;
  context_.seed = static_cast<std::uint64_t>(run.seed);
  context_.run_dir = dir_ ? dir_->path() : "";
  context_.max_steps = run.max_steps;
  torch::manual_seed(run.seed);

  auto make = [&](PluginKind kind, auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const PluginChoice& c = manifest_.at(kind);
    logger_->debug("creating {} plugin '{}' {} ({})", section_name(kind), c.info->name, c.info->version, c.info->path);
    return loader.create<T>(*c.info, context_, c.options);
  };
  backend_ = make(PluginKind::Backend, static_cast<Backend*>(nullptr));
  context_.backend = backend_.get();
  context_.device = backend_->device();
  task_ = make(PluginKind::Task, static_cast<Task*>(nullptr));
  optimizer_ = make(PluginKind::Optimizer, static_cast<Optimizer*>(nullptr));
  dynamics_ = make(PluginKind::DynamicsModel, static_cast<DynamicsModel*>(nullptr));
  correction_ = make(PluginKind::CorrectionStrategy, static_cast<CorrectionStrategy*>(nullptr));
  phase_ = make(PluginKind::PhaseController, static_cast<PhaseController*>(nullptr));
  if (manifest_.has(PluginKind::Checkpointer)) {
    checkpointer_ = make(PluginKind::Checkpointer, static_cast<Checkpointer*>(nullptr));
    // A checkpointer that declares `background` lets the engine call save() on another
    // thread (the contract is in hpt/checkpointer.hpp).
    const Options& o = manifest_.at(PluginKind::Checkpointer).options;
    background_checkpoints_ = o.has("background") && o.get_bool("background");
  }

  // Metrics named in run.target / run.early_stop must exist.
  auto names = task_->metric_names();
  for (const auto* goal : {run.target ? &*run.target : nullptr, run.early_stop ? &*run.early_stop : nullptr}) {
    if (goal && std::find(names.begin(), names.end(), goal->metric) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      std::string near = closest_name(goal->metric, names);
      throw BadInput(manifest_.source + ": metric '" + goal->metric + "' is not reported by task '" +
                     manifest_.at(PluginKind::Task).info->name + "' (it reports: " + list + ")" +
                     (near.empty() ? "" : "; did you mean '" + near + "'?"));
    }
  }

  for (const auto& p : task_->model().parameters(true)) params_.push_back(p);
  layout_ = make_layout(task_->model());
  predicting_enabled_ = manifest_.at(PluginKind::DynamicsModel).info->name != "none";
  optimizer_->bind(params_, predicting_enabled_);
  dynamics_->bind(layout_);

  state_.max_steps = run.max_steps;
  summary_.run_dir = dir_ ? dir_->path() : "";
  progress_ = std::make_unique<Progress>();
  progress_->tty = options_.progress == 1 || (options_.progress == -1 && ::isatty(2));

  if (run.resume) resume_from_checkpoint();
  take_last_good();
}

void Engine::take_last_good() {
  last_good_params_ = backend_->snapshot(params_);
  last_good_optimizer_ = archive_bytes([&](auto& a) { optimizer_->save(a); });
  monitor_.snapshot_taken();
}

void Engine::handle_diagnosis(const Diagnosis& d) {
  if (d.alarm == Alarm::None) return;
  if (dir_) {
    boost::json::object line;
    line["type"] = "divergence";
    line["step"] = state_.step;
    line["alarm"] = d.alarm == Alarm::Critical ? "critical" : d.alarm == Alarm::Warning ? "warning" : "notice";
    line["reason"] = d.reason;
    dir_->append_metrics(line);
  }
  if (d.alarm != Alarm::Critical) {
    logger_->debug("divergence monitor at step {}: {}", state_.step, d.reason);
    return;
  }
  const auto& s = monitor_.settings();
  if (critical_rollbacks_ >= s.max_rollbacks)
    throw RunError(d.reason + " at step " + std::to_string(state_.step) + " (learning rate " +
                   std::to_string(optimizer_->learning_rate()) + ", after " + std::to_string(critical_rollbacks_) +
                   " roll-backs with the learning rate cut): training diverged; lower optimizer.lr or enable "
                   "clipping (optimizer.clip). Checkpoints and metrics so far are kept.");
  ++critical_rollbacks_;
  ++summary_.divergence_rollbacks;
  backend_->restore(params_, last_good_params_);
  read_archive(last_good_optimizer_, [&](auto& a) { optimizer_->load(a); });
  optimizer_->scale_learning_rate(s.lr_cut);
  monitor_.reset_statistics();
  logger_->warn("step {}: {}; rolled back to the last good state and cut the learning rate to {:g}", state_.step,
                d.reason, optimizer_->learning_rate() * s.lr_cut);
}

// Engine::~Engine() is with the checkpoint code below: it waits for a background save.

const std::string& Engine::run_dir() const { return summary_.run_dir; }

void Engine::record_step(const StepRecord& r, const char* extra_kind) {
  summary_.train_seconds += r.seconds;
  state_.seconds = summary_.train_seconds;
  if (!dir_) return;
  if (r.kind != StepKind::Probe && manifest_.run.log_every > 1 && r.step % manifest_.run.log_every != 0) return;
  boost::json::object line;
  line["type"] = "step";
  line["step"] = r.step;
  line["kind"] = extra_kind ? extra_kind : to_string(r.kind);
  line["loss"] = r.loss;
  line["lr"] = r.learning_rate;
  line["grad_norm"] = r.grad_norm;
  line["seconds"] = r.seconds;
  line["train_seconds"] = summary_.train_seconds;
  line["forward"] = r.forward_passes;
  line["backward"] = r.backward_passes;
  dir_->append_metrics(line);
}

void Engine::real_step(StepKind kind) {
  auto t0 = Clock::now();
  Batch batch = task_->next_batch();
  int forward = 0, backward = 0;
  torch::nn::Module& model = task_->model();
  Closure closure = [&]() {
    model.zero_grad();
    torch::Tensor loss = task_->loss(batch);
    ++forward;
    loss.backward();
    ++backward;
    return loss.detach();
  };
  std::int64_t step = state_.step + 1;
  torch::Tensor loss_t = optimizer_->step(closure, step);
  double loss = loss_t.item<double>();  // waits for the device
  backend_->synchronize();

  StepRecord record;
  record.step = step;
  record.kind = kind;
  record.loss = loss;
  record.grad_norm = optimizer_->last_grad_norm();
  record.learning_rate = optimizer_->learning_rate();
  record.forward_passes = forward;
  record.backward_passes = backward;
  Diagnosis diagnosis = monitor_.observe(loss, record.grad_norm);
  monitor_.took_real_step();
  if (diagnosis.alarm == Alarm::Critical) {
    record.seconds = seconds_since(t0);
    state_.step = step;
    ++summary_.real_steps;
    summary_.forward_passes += forward;
    summary_.backward_passes += backward;
    record_step(record);
    auto tr = Clock::now();
    handle_diagnosis(diagnosis);  // rolls back, or throws after too many roll-backs
    summary_.train_seconds += seconds_since(tr);
    return;
  }
  if (predicting_enabled_) {
    record.update = optimizer_->last_update();
    torch::Tensor norms = backend_->norms(record.update).to(torch::kCPU, torch::kFloat64).square();
    auto acc = norms.accessor<double, 1>();
    record.group_update_norms.assign(layout_.groups.size(), 0.0);
    for (std::size_t p = 0; p < params_.size(); ++p) record.group_update_norms[layout_.group_of[p]] += acc[static_cast<std::int64_t>(p)];
    for (auto& n : record.group_update_norms) n = std::sqrt(n);
    dynamics_->observe(record);
    state_.confidence = dynamics_->confidence();
    if (pending_forecast_) {
      correction_->observe_real(record, *pending_forecast_);
      pending_forecast_.reset();
    }
  }
  if (monitor_.snapshot_due()) take_last_good();
  record.seconds = seconds_since(t0);

  state_.step = step;
  ++state_.real_steps;
  ++state_.steps_since_phase;
  state_.last_loss = loss;
  state_.loss_ema = state_.real_steps == 1 ? loss : 0.95 * state_.loss_ema + 0.05 * loss;
  ++summary_.real_steps;
  summary_.forward_passes += forward;
  summary_.backward_passes += backward;
  record_step(record);
  handle_diagnosis(diagnosis);
}

double Engine::probe_loss() {
  auto t0 = Clock::now();
  double loss;
  {
    torch::InferenceMode guard;
    loss = task_->loss(task_->probe_batch()).item<double>();
  }
  backend_->synchronize();
  StepRecord r;
  r.step = state_.step;
  r.kind = StepKind::Probe;
  r.loss = loss;
  r.learning_rate = optimizer_->learning_rate();
  r.seconds = seconds_since(t0);
  ++summary_.probes;
  record_step(r);
  return loss;
}

std::int64_t Engine::predicted_phase(std::int64_t horizon) {
  horizon = std::min(horizon, state_.max_steps - state_.step);
  if (horizon <= 0) return 0;
  auto t_phase = Clock::now();
  auto t0 = Clock::now();
  Forecast forecast = correction_->adjust(dynamics_->forecast(horizon));
  if (forecast.confidence <= 0.0 || forecast.horizon() == 0 || forecast.direction.size() != params_.size()) {
    // Nothing to predict with: the time asked of the plugins still counts.
    summary_.train_seconds += seconds_since(t0);
    state_.seconds = summary_.train_seconds;
    return 0;
  }
  if (!forecast.offset.empty() && forecast.offset.size() != params_.size())
    throw RunError("dynamics '" + manifest_.at(PluginKind::DynamicsModel).info->name + "' forecast an offset for " +
                   std::to_string(forecast.offset.size()) + " parameters; the model has " +
                   std::to_string(params_.size()));
  horizon = std::min<std::int64_t>(horizon, forecast.horizon());
  std::vector<torch::Tensor> snapshot = backend_->snapshot(params_);
  summary_.train_seconds += seconds_since(t0);
  state_.seconds = summary_.train_seconds;

  const std::int64_t step_before = state_.step;
  const double loss_before = probe_loss();
  PhaseOutcome outcome;
  outcome.planned = horizon;
  outcome.loss_before = loss_before;
  outcome.loss_after = loss_before;
  std::vector<double> scales(params_.size());
  std::int64_t applied = 0;
  Verdict verdict = Verdict::Continue;
  while (applied < horizon && verdict == Verdict::Continue) {
    auto ts = Clock::now();
    if (applied == 0 && !forecast.offset.empty())
      backend_->add_scaled(params_, forecast.offset, std::vector<double>(params_.size(), 1.0));
    for (std::size_t p = 0; p < params_.size(); ++p)
      scales[p] = forecast.scale[static_cast<std::size_t>(applied)][layout_.group_of[p]];
    backend_->add_scaled(params_, forecast.direction, scales);
    backend_->synchronize();
    ++applied;
    StepRecord r;
    r.step = step_before + applied;
    r.kind = StepKind::Predicted;
    r.loss = forecast.loss.empty() ? state_.last_loss : forecast.loss[static_cast<std::size_t>(applied - 1)];
    r.learning_rate = optimizer_->learning_rate();
    r.seconds = seconds_since(ts);
    state_.step = r.step;
    record_step(r);
    if (applied % manifest_.run.probe_interval == 0 || applied == horizon) {
      double probe = probe_loss();
      outcome.loss_after = probe;
      verdict = std::isfinite(probe) ? correction_->judge(forecast, applied, probe, loss_before) : Verdict::Rollback;
      if (!std::isfinite(probe))
        logger_->warn("probe loss is {} after {} predicted steps: rolling back", probe, applied);
    }
  }
  outcome.applied = applied;
  if (verdict == Verdict::Rollback) {
    auto tr = Clock::now();
    backend_->restore(params_, snapshot);
    backend_->synchronize();
    summary_.train_seconds += seconds_since(tr);
    state_.seconds = summary_.train_seconds;
    summary_.predicted_discarded += applied;
    ++summary_.rollbacks;
    ++state_.rollbacks;
    state_.step = step_before;
    outcome.rolled_back = true;
    handle_diagnosis(monitor_.phase_rolled_back());
    outcome.applied = 0;
    if (dir_) {
      boost::json::object line;
      line["type"] = "rollback";
      line["step"] = state_.step;
      line["discarded"] = applied;
      dir_->append_metrics(line);
    }
  } else {
    summary_.predicted_steps += applied;
    state_.predicted_steps += applied;
    pending_forecast_ = std::move(forecast);
  }
  outcome.seconds = seconds_since(t_phase);
  state_.steps_since_phase = 0;
  phase_->phase_ended(outcome);
  return outcome.applied;
}

Metrics Engine::evaluate() {
  auto t0 = Clock::now();
  Metrics m;
  {
    torch::NoGradGuard guard;
    task_->model().eval();
    m = task_->evaluate();
    task_->model().train();
  }
  backend_->synchronize();
  double seconds = seconds_since(t0);
  summary_.eval_seconds += seconds;
  ++summary_.evaluations;
  summary_.final_metrics = m;
  last_eval_step_ = state_.step;
  optimizer_->on_evaluation(m);
  if (dir_) {
    boost::json::object line;
    line["type"] = "eval";
    line["step"] = state_.step;
    line["train_seconds"] = summary_.train_seconds;
    line["eval_seconds"] = seconds;
    line["backward_passes"] = summary_.backward_passes;
    for (const auto& [k, v] : m) line[k] = v;
    dir_->append_metrics(line);
    dir_->flush();
  }
  std::ostringstream os;
  for (const auto& [k, v] : m) os << (os.tellp() > 0 ? " " : "") << k << " " << v;
  progress_->last_eval = os.str();
  logger_->debug("eval at step {}: {}", state_.step, os.str());
  return m;
}

bool Engine::target_reached(const Metrics& m) {
  const auto& t = manifest_.run.target;
  if (!t || summary_.seconds_to_target) return false;
  auto it = m.find(t->metric);
  if (it == m.end()) return false;
  bool hit = t->maximize ? it->second >= t->value : it->second <= t->value;
  if (hit) {
    summary_.seconds_to_target = summary_.train_seconds;
    summary_.steps_to_target = state_.step;
    summary_.backward_passes_to_target = summary_.backward_passes;
  }
  return hit;
}

bool Engine::early_stop_now(const Metrics& m) {
  const auto& e = manifest_.run.early_stop;
  if (!e) return false;
  auto it = m.find(e->metric);
  if (it == m.end()) return false;
  double v = it->second;
  bool better = !best_metric_ || (e->maximize ? v > *best_metric_ + e->value : v < *best_metric_ - e->value);
  if (better) {
    best_metric_ = v;
    evals_without_improvement_ = 0;
    return false;
  }
  return ++evals_without_improvement_ >= e->patience;
}

void Engine::maybe_evaluate(bool force) {
  const std::int64_t every = manifest_.run.eval_every;
  bool due = every > 0 && state_.step / every > last_eval_step_ / every;
  if (!(due || (force && last_eval_step_ != state_.step))) return;
  Metrics m = evaluate();
  const auto& target = manifest_.run.target;
  const bool reached_now = target_reached(m);
  if (reached_now)
    logger_->info("target {} reached at step {} after {:.2f}s of training{}", target->metric, state_.step,
                  summary_.train_seconds,
                  !target->stop                      ? "; going on to max_steps"
                  : state_.step < target->min_steps ? fmt::format("; going on to step {}", target->min_steps)
                                                     : std::string());
  if (target && target->stop && summary_.seconds_to_target && state_.step >= target->min_steps) {
    summary_.status = "target_reached";
    stop_ = true;
  } else if (!reached_now && early_stop_now(m)) {
    logger_->info("early stopping at step {}: {} did not improve for {} evaluations", state_.step,
                  manifest_.run.early_stop->metric, manifest_.run.early_stop->patience);
    summary_.status = "early_stopped";
    stop_ = true;
  }
}

RunSummary Engine::run() {
  logger_->info("run '{}' -> {}", manifest_.run.name, summary_.run_dir.empty() ? "(no run directory)" : summary_.run_dir);
  task_->model().train();
  summary_.status = "completed";
  while (state_.step < state_.max_steps && !stop_) {
    PhaseDecision d = phase_->decide(state_);
    if (d.kind == PhaseKind::Predict && predicting_enabled_ && monitor_.forced_real_steps() > 0) {
      d = {PhaseKind::Full, monitor_.forced_real_steps()};  // the divergence monitor wants real steps first
    }
    if (d.kind == PhaseKind::Predict && predicting_enabled_) {
      std::int64_t kept = predicted_phase(monitor_.horizon_cap(std::max<std::int64_t>(1, d.length)));
      check_signal();
      if (kept == 0 && !stop_) real_step(StepKind::Full);  // keep moving when a forecast was refused
      else if (kept > 0 && state_.step < state_.max_steps) real_step(StepKind::Correct);
      maybe_evaluate(false);
    } else {
      StepKind kind = d.kind == PhaseKind::Correct ? StepKind::Correct : StepKind::Full;
      for (std::int64_t i = 0; i < std::max<std::int64_t>(1, d.length) && state_.step < state_.max_steps && !stop_; ++i) {
        real_step(kind);
        check_signal();
        maybe_evaluate(false);
        maybe_save_checkpoint();
        progress_->update(state_, *logger_, false);
      }
    }
    maybe_save_checkpoint();
    progress_->update(state_, *logger_, false);
  }
  maybe_evaluate(true);
  progress_->update(state_, *logger_, true);
  finish_checkpoints();
  summary_.steps = state_.step;
  write_summary();
  return summary_;
}

void Engine::check_signal() {
  int signal = g_pending_signal.exchange(0);
  if (signal == 0) return;
  progress_->update(state_, *logger_, true);
  logger_->warn("{} received at step {}: writing a final checkpoint and stopping",
                signal == SIGINT ? "SIGINT" : "SIGTERM", state_.step);
  finish_checkpoints();
  summary_.status = "interrupted";
  summary_.steps = state_.step;
  write_summary();
  throw Interrupted(signal);
}

void Engine::write_summary() {
  logger_->flush();
  if (!dir_) return;
  dir_->flush();
  boost::json::object o = summary_.to_json();
  o["name"] = manifest_.run.name;
  o["seed"] = manifest_.run.seed;
  o["max_steps"] = manifest_.run.max_steps;
  o["hpt_version"] = HPT_VERSION_STRING;
  o["torch_version"] = HPT_TORCH_VERSION_STRING;
  o["torch_threads"] = torch::get_num_threads();
  boost::json::object plugins;
  for (const auto& [kind, c] : manifest_.plugins) plugins[section_name(kind)] = c.info->name + " " + c.info->version;
  o["plugins"] = plugins;
  dir_->write_file("summary.json", boost::json::serialize(o) + "\n");
}

// ---------------------------------------------------------------------------------
// Checkpoints

void Engine::write_checkpoint_archives(
    const std::function<void(const char* name, torch::serialize::OutputArchive& archive)>& take) const {
  auto one = [&](const char* name, const std::function<void(torch::serialize::OutputArchive&)>& save) {
    torch::serialize::OutputArchive archive;
    save(archive);
    take(name, archive);
  };
  one("model.pt", [&](auto& a) { task_->model().save(a); });
  one("optimizer.pt", [&](auto& a) { optimizer_->save(a); });
  one("task.pt", [&](auto& a) { task_->save(a); });
  one("dynamics.pt", [&](auto& a) { dynamics_->save(a); });
  one("correction.pt", [&](auto& a) { correction_->save(a); });
  one("phase.pt", [&](auto& a) { phase_->save(a); });
  one("backend.pt", [&](auto& a) { backend_->save(a); });
  one("engine.pt", [&](torch::serialize::OutputArchive& a) {
    auto i64 = [&](const char* k, std::int64_t v) { a.write(k, torch::tensor(v, torch::kInt64)); };
    auto f64 = [&](const char* k, double v) { a.write(k, torch::tensor(v, torch::kFloat64)); };
    i64("step", state_.step);
    i64("real_steps", state_.real_steps);
    i64("predicted_steps", state_.predicted_steps);
    i64("steps_since_phase", state_.steps_since_phase);
    i64("rollbacks", state_.rollbacks);
    f64("last_loss", state_.last_loss);
    f64("loss_ema", state_.loss_ema);
    f64("confidence", state_.confidence);
    i64("s_real_steps", summary_.real_steps);
    i64("s_predicted_steps", summary_.predicted_steps);
    i64("s_predicted_discarded", summary_.predicted_discarded);
    i64("s_probes", summary_.probes);
    i64("s_rollbacks", summary_.rollbacks);
    i64("s_divergence_rollbacks", summary_.divergence_rollbacks);
    i64("critical_rollbacks", critical_rollbacks_);
    i64("s_forward", summary_.forward_passes);
    i64("s_backward", summary_.backward_passes);
    i64("s_evaluations", summary_.evaluations);
    f64("s_train_seconds", summary_.train_seconds);
    f64("s_eval_seconds", summary_.eval_seconds);
    i64("last_eval_step", last_eval_step_);
    i64("evals_without_improvement", evals_without_improvement_);
    if (best_metric_) f64("best_metric", *best_metric_);
    a.write("rng", cpu_rng_state());
  });
}

std::vector<CheckpointFile> Engine::checkpoint_files() const {
  std::vector<CheckpointFile> files;
  write_checkpoint_archives([&](const char* name, torch::serialize::OutputArchive& archive) {
    files.push_back({name, archive_bytes(archive)});
  });
  files.push_back({"config.resolved.toml", manifest_.to_toml()});
  return files;
}

Engine::CheckpointSnapshot Engine::checkpoint_snapshot() const {
  CheckpointSnapshot snapshot;
  write_checkpoint_archives([&](const char* name, torch::serialize::OutputArchive& archive) {
    snapshot.archives_.emplace_back(name, frozen_copy(archive));
  });
  snapshot.plain_.push_back({"config.resolved.toml", manifest_.to_toml()});
  return snapshot;
}

std::vector<CheckpointFile> Engine::CheckpointSnapshot::files() const {
  std::vector<CheckpointFile> files;
  for (const auto& [name, frozen] : archives_) files.push_back({name, frozen_bytes(frozen)});
  files.insert(files.end(), plain_.begin(), plain_.end());
  return files;
}

void Engine::restore_checkpoint(const std::vector<CheckpointFile>& files, const std::string& path) {
  auto find = [&](const std::string& name) -> const std::string& {
    for (const auto& f : files)
      if (f.name == name) return f.bytes;
    throw BadInput(path + " has no " + name);
  };
  // The same parameters, by name and shape, before anything is loaded.
  auto shape_text = [](const torch::Tensor& t) {
    std::string s = "[";
    for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
    return s + "]";
  };
  auto saved = read_model_tensors(find("model.pt"), path + "/model.pt");
  for (const auto& item : task_->model().named_parameters(true)) {
    auto it = std::find_if(saved.begin(), saved.end(), [&](const auto& kv) { return kv.first == item.key(); });
    if (it == saved.end())
      throw CheckpointMismatch(path + " does not fit this model: it has no parameter '" + item.key() +
                               "' (the model's has shape " + shape_text(item.value()) + ")");
    if (!it->second.sizes().equals(item.value().sizes()))
      throw CheckpointMismatch(path + " does not fit this model: parameter '" + item.key() + "' has shape " +
                               shape_text(it->second) + " in the checkpoint and " + shape_text(item.value()) +
                               " in the model");
  }
  read_archive(find("model.pt"), [&](auto& a) { task_->model().load(a); });
  read_archive(find("optimizer.pt"), [&](auto& a) { optimizer_->load(a); });
  read_archive(find("task.pt"), [&](auto& a) { task_->load(a); });
  read_archive(find("dynamics.pt"), [&](auto& a) { dynamics_->load(a); });
  read_archive(find("correction.pt"), [&](auto& a) { correction_->load(a); });
  read_archive(find("phase.pt"), [&](auto& a) { phase_->load(a); });
  read_archive(find("backend.pt"), [&](auto& a) { backend_->load(a); });
  read_archive(find("engine.pt"), [&](torch::serialize::InputArchive& a) {
    auto i64 = [&](const char* k) {
      torch::Tensor t;
      a.read(k, t);
      return t.item<std::int64_t>();
    };
    auto f64 = [&](const char* k) {
      torch::Tensor t;
      a.read(k, t);
      return t.item<double>();
    };
    state_.step = i64("step");
    state_.real_steps = i64("real_steps");
    state_.predicted_steps = i64("predicted_steps");
    state_.steps_since_phase = i64("steps_since_phase");
    state_.rollbacks = i64("rollbacks");
    state_.last_loss = f64("last_loss");
    state_.loss_ema = f64("loss_ema");
    state_.confidence = f64("confidence");
    summary_.real_steps = i64("s_real_steps");
    summary_.predicted_steps = i64("s_predicted_steps");
    summary_.predicted_discarded = i64("s_predicted_discarded");
    summary_.probes = i64("s_probes");
    summary_.rollbacks = i64("s_rollbacks");
    summary_.divergence_rollbacks = i64("s_divergence_rollbacks");
    critical_rollbacks_ = i64("critical_rollbacks");
    summary_.forward_passes = i64("s_forward");
    summary_.backward_passes = i64("s_backward");
    summary_.evaluations = i64("s_evaluations");
    summary_.train_seconds = f64("s_train_seconds");
    summary_.eval_seconds = f64("s_eval_seconds");
    state_.seconds = summary_.train_seconds;
    last_eval_step_ = i64("last_eval_step");
    evals_without_improvement_ = i64("evals_without_improvement");
    torch::Tensor t;
    if (a.try_read("best_metric", t)) best_metric_ = t.item<double>();
    torch::Tensor rng;
    a.read("rng", rng);
    set_cpu_rng_state(rng);
  });
  last_checkpoint_step_ = state_.step;
  last_checkpoint_seconds_ = summary_.train_seconds;
}

// A background save in flight: started on the training thread from a snapshot, finished
// (serialised, hashed, written, fsynced, renamed, retention applied) on another thread.
struct Engine::PendingCheckpoint {
  struct Result {
    CheckpointInfo info;
    double seconds = 0.0;  // the background thread's work
  };
  std::int64_t step = 0;
  double snapshot_seconds = 0.0;  // what the training thread spent taking the snapshot
  std::future<Result> result;
};

Engine::~Engine() {
  // A background save still running (training failed meanwhile) finishes before the
  // checkpointer goes away; its own failure is only logged, the run has failed already.
  if (!pending_checkpoint_) return;
  try {
    pending_checkpoint_->result.get();
  } catch (const std::exception& e) {
    logger_->error("the checkpoint of step {} (saved in the background) failed: {}", pending_checkpoint_->step, e.what());
  }
}

void Engine::maybe_save_checkpoint() {
  if (!checkpointer_) return;
  // A background save that has finished is collected now, so that its error (if any)
  // stops the run at once and its figures reach metrics.jsonl.
  if (pending_checkpoint_ && pending_checkpoint_->result.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
    wait_for_checkpoint();
  if (last_checkpoint_step_ != state_.step &&
      checkpointer_->due(state_.step, summary_.train_seconds - last_checkpoint_seconds_))
    save_checkpoint();
}

void Engine::save_checkpoint(bool final) {
  wait_for_checkpoint();  // at most one save in flight, and in step order
  auto t0 = Clock::now();
  for (std::size_t p = 0; p < params_.size(); ++p)
    if (!torch::isfinite(params_[p]).all().item<bool>()) {
      logger_->error("not writing a checkpoint at step {}: parameter {} is not finite", state_.step, layout_.names[p]);
      return;
    }
  Metrics metrics = summary_.final_metrics;
  last_checkpoint_step_ = state_.step;
  last_checkpoint_seconds_ = summary_.train_seconds;
  // The last save of a run gains nothing from a thread: the run waits for it anyway.
  if (!background_checkpoints_ || final) {
    CheckpointInfo info = checkpointer_->save(state_.step, checkpoint_files(), metrics);
    double seconds = seconds_since(t0);
    record_checkpoint(state_.step, info.path, seconds, seconds, std::nullopt);
    return;
  }
  auto pending = std::make_unique<PendingCheckpoint>();
  pending->step = state_.step;
  auto snapshot = std::make_shared<const CheckpointSnapshot>(checkpoint_snapshot());
  backend_->synchronize();  // the clones are complete before another thread reads them
  pending->snapshot_seconds = seconds_since(t0);
  pending->result = std::async(std::launch::async, [checkpointer = checkpointer_, snapshot, step = state_.step,
                                                    metrics = std::move(metrics)]() mutable {
    auto t_start = Clock::now();
    PendingCheckpoint::Result r;
    r.info = checkpointer->save(step, snapshot->files(), metrics);
    snapshot.reset();  // frees the copies now rather than at the next wait
    r.seconds = seconds_since(t_start);
    return r;
  });
  pending_checkpoint_ = std::move(pending);
}

// Joins the background save in flight, if any. Its failure fails the run here: the
// checkpoint the run believes it has does not exist.
void Engine::wait_for_checkpoint() {
  if (!pending_checkpoint_) return;
  std::unique_ptr<PendingCheckpoint> pending = std::move(pending_checkpoint_);
  auto t0 = Clock::now();
  PendingCheckpoint::Result r;
  try {
    r = pending->result.get();
  } catch (const std::exception& e) {
    throw RunError("the checkpoint of step " + std::to_string(pending->step) +
                   " (saved in the background) failed: " + e.what());
  }
  double waited = seconds_since(t0);
  record_checkpoint(pending->step, r.info.path, pending->snapshot_seconds + r.seconds, pending->snapshot_seconds + waited,
                    pending->snapshot_seconds);
}

// The end of a run (or a signal): a checkpoint of the current step, and nothing in flight.
void Engine::finish_checkpoints() {
  if (!checkpointer_) return;
  if (last_checkpoint_step_ != state_.step) save_checkpoint(/*final=*/true);
  wait_for_checkpoint();
}

void Engine::record_checkpoint(std::int64_t step, const std::string& path, double seconds, double stall_seconds,
                               std::optional<double> snapshot_seconds) {
  summary_.checkpoint_seconds += seconds;
  summary_.checkpoint_stall_seconds += stall_seconds;
  logger_->debug("checkpoint step {} -> {} ({:.3f}s, training stalled {:.3f}s)", step, path, seconds, stall_seconds);
  if (!dir_) return;
  boost::json::object line;
  line["type"] = "checkpoint";
  line["step"] = step;
  line["path"] = path;
  line["background"] = snapshot_seconds.has_value();
  line["seconds"] = seconds;
  line["stall_seconds"] = stall_seconds;
  if (snapshot_seconds) line["snapshot_seconds"] = *snapshot_seconds;  // the rest of the stall: waiting for it
  dir_->append_metrics(line);
}

void Engine::resume_from_checkpoint() {
  if (!checkpointer_)
    throw BadInput(manifest_.source + ": run.resume needs a [checkpointer] section (no checkpoints were written)");
  auto list = checkpointer_->list();
  if (list.empty()) {
    logger_->warn("run.resume: no checkpoint in {}, starting from step 0", summary_.run_dir);
    return;
  }
  for (const auto& c : list) {
    try {
      restore_checkpoint(checkpointer_->load(c.path), c.path);
      logger_->info("resumed from {} (step {})", c.path, state_.step);
      return;
    } catch (const CheckpointMismatch&) {
      throw;  // older checkpoints of this run will not fit either
    } catch (const std::exception& e) {
      logger_->warn("checkpoint {} is not usable ({}); trying the one before", c.path, e.what());
    }
  }
  throw RunError("no valid checkpoint in " + summary_.run_dir + " to resume from");
}

}  // namespace hpt::host
