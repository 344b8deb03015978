// The engine's loop: run(), a real step and a predicted phase, read as the algorithm in
// docs/architecture.md ("One step of the engine"). Checkpoint content and saving are in
// engine_checkpoints.cpp; what is written where is in output/.
#include "engine/engine.hpp"

#include <cmath>
#include <csignal>
#include <filesystem>
#include <limits>

#include <spdlog/spdlog.h>

#include "checkpoint/archive_io.hpp"
#include "checkpoint/weights_file.hpp"
#include "process/error_text.hpp"

namespace hpt::host {

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

namespace {

// run.eval_threads: LibTorch's intra-op threads raised for one evaluation and put back
// after it (evaluation is outside the training time; training keeps its own count).
class EvaluationThreads {
 public:
  explicit EvaluationThreads(std::int64_t threads) : training_(torch::get_num_threads()) {
    if (threads > 0 && threads != training_) {
      torch::set_num_threads(static_cast<int>(threads));
      changed_ = true;
    }
  }
  ~EvaluationThreads() {
    if (changed_) torch::set_num_threads(training_);
  }
  EvaluationThreads(const EvaluationThreads&) = delete;
  EvaluationThreads& operator=(const EvaluationThreads&) = delete;

 private:
  int training_;
  bool changed_ = false;
};

AveragingSettings averaging_of(const ResolvedManifest& m) {
  return AveragingSettings::from(m.averaging ? *m.averaging : Options::defaults(AveragingSettings::option_specs()),
                                 m.averaging.has_value());
}

StabilitySettings stability_of(const ResolvedManifest& m) {
  return StabilitySettings::from(m.stability ? *m.stability : Options::defaults(StabilitySettings::option_specs()),
                                 m.stability.has_value());
}

BatchScheduleSettings batch_schedule_of(const ResolvedManifest& m) {
  return BatchScheduleSettings::from(
      m.batch_schedule ? *m.batch_schedule : Options::defaults(BatchScheduleSettings::option_specs()),
      m.batch_schedule.has_value());
}

LookaheadSettings lookahead_of(const ResolvedManifest& m) {
  return LookaheadSettings::from(m.lookahead ? *m.lookahead : Options::defaults(LookaheadSettings::option_specs()),
                                 m.lookahead.has_value());
}

CurriculumSettings curriculum_of(const ResolvedManifest& m) {
  return CurriculumSettings::from(m.curriculum ? *m.curriculum : Options::defaults(CurriculumSettings::option_specs()),
                                  m.curriculum.has_value());
}

}  // namespace

Engine::Engine(ResolvedManifest manifest, PluginLoader& loader, EngineOptions options)
    : manifest_(std::move(manifest)),
      options_(options),
      monitor_(DivergenceSettings::from(manifest_.run.divergence)),
      average_(averaging_of(manifest_)),
      lookahead_(lookahead_of(manifest_)),
      stability_(stability_of(manifest_)),
      batch_schedule_(batch_schedule_of(manifest_)),
      curriculum_(curriculum_of(manifest_)) {
  const RunConfig& run = manifest_.run;
  // Rank 0 alone writes the run directory; the other ranks log warnings and errors only.
  if (options_.write_run_dir && options_.world.rank == 0)
    dir_ = std::make_unique<RunDirectory>(run.runs_dir, run.name, run.resume, options_.overwrite);
  const bool quiet_rank = options_.world.rank > 0 && run.log_level != "warn" && run.log_level != "error";
  logger_ = make_run_logger(dir_ ? dir_->path() : "", quiet_rank ? "warn" : run.log_level);
  if (dir_) {
    std::string resolved = manifest_.to_toml();
    if (options_.world.size > 1) {
      const Options& task = manifest_.at(PluginKind::Task).options;
      const std::string ranks = std::to_string(options_.world.size);
      resolved += "\n# Data parallel: " + ranks + " ranks. task.batch_size is per rank" +
                  (task.has("batch_size") ? ": the global batch is " + std::to_string(task.get_int("batch_size")) +
                                                " x " + ranks + " = " +
                                                std::to_string(task.get_int("batch_size") * options_.world.size)
                                          : std::string()) +
                  ".\n";
    }
    dir_->write_file("config.resolved.toml", resolved);
    metrics_ = MetricsLog(dir_->file("metrics.jsonl"), run.log_every);
    // run.loggers: metrics.csv, TensorBoard event files; they hear what metrics.jsonl records.
    if (manifest_.run_options.has("loggers"))
      for (auto& sink : make_metrics_sinks(manifest_.run_options.get_string_list("loggers"), dir_->path(), resolved))
        metrics_.add_sink(std::move(sink));
  }

  try {
    start(loader);
  } catch (...) {
    // Nothing ran: a run directory this run made goes, so the corrected command is not refused.
    logger_->flush();
    if (dir_) dir_->remove_if_fresh();
    throw;
  }
}

void Engine::start(PluginLoader& loader) {
  const RunConfig& run = manifest_.run;
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
  distributed_ = DistributedSettings::from(manifest_.distributed);
  if (distributed()) {
    // Before the task exists: it reads its shard of the data by rank.
    backend_->join(options_.world);
    context_.rank = options_.world.rank;
    context_.world_size = options_.world.size;
    summary_.world_size = options_.world.size;
    // Every rank reads rank 0's checkpoints on resume.
    if (options_.write_run_dir && !dir_) context_.run_dir = (std::filesystem::path(run.runs_dir) / run.name).string();
    logger_->info("rank {} of {}: joined through {} ({})", options_.world.rank, options_.world.size,
                  distributed_.backend, context_.device.str());
  }
  precision_ = PrecisionSettings::from(manifest_.at(PluginKind::Backend).options);
  if (precision_.precision != Precision::Fp32) {
    autocast_dtype_ = precision_.precision == Precision::Bf16 ? c10::ScalarType::BFloat16 : c10::ScalarType::Half;
    std::string why = AutocastScope::unsupported(context_.device.type(), autocast_dtype_);
    if (!why.empty())
      throw BadInput(manifest_.source + ": [backend] precision = \"" + to_string(precision_.precision) +
                     "\" on " + context_.device.str() + ": " + why);
  }
  if (precision_.precision == Precision::Fp16)
    scaler_.emplace(LossScalerSettings{precision_.loss_scale, precision_.scale_growth, precision_.scale_backoff,
                                       precision_.growth_interval});
  task_ = make(PluginKind::Task, static_cast<Task*>(nullptr));
  curriculum_.check(*task_, manifest_.at(PluginKind::Task).info->name, manifest_.source);
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
  state_files_ = make_state_files();

  // Metrics named in run.target, run.early_stop and checkpointer.best_metric must exist.
  std::vector<std::pair<std::string, std::string>> named;  // (where, metric)
  if (run.target) named.emplace_back("run.target", run.target->metric);
  if (run.early_stop) named.emplace_back("run.early_stop", run.early_stop->metric);
  if (manifest_.has(PluginKind::Checkpointer)) {
    const Options& o = manifest_.at(PluginKind::Checkpointer).options;
    if (o.has("best_metric") && !o.get_string("best_metric").empty())
      named.emplace_back("checkpointer.best_metric", o.get_string("best_metric"));
  }
  // With [averaging], the averaged weights' metrics are "avg.<name>" (evaluate = "both" or "average").
  auto names = reported_metric_names();
  const auto task_names = task_->metric_names();
  const AveragingSettings& averaging = average_.settings();
  for (const auto& [where, metric] : named) {
    if (std::find(names.begin(), names.end(), metric) != names.end()) continue;
    const std::string prefix = kAveragedMetricPrefix;
    const bool averaged = metric.rfind(prefix, 0) == 0;
    const std::string base = averaged ? metric.substr(prefix.size()) : metric;
    const bool task_reports = std::find(task_names.begin(), task_names.end(), base) != task_names.end();
    if (task_reports && averaged)
      throw BadInput(manifest_.source + ": " + where + ": metric '" + metric +
                     "' is measured on the averaged weights, which " +
                     (averaging.enabled ? "[averaging] evaluate = \"raw\" does not evaluate: set evaluate = \"both\" "
                                          "or \"average\""
                                        : "this run does not keep: add an [averaging] section (e.g. decay = 0.99)"));
    if (task_reports)
      throw BadInput(manifest_.source + ": " + where + ": metric '" + metric +
                     "' is not evaluated: [averaging] evaluate = \"average\" reports only the averaged weights' "
                     "metrics: name '" + prefix + metric + "' or set evaluate = \"both\"");
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    std::string near = closest_name(metric, names);
    throw BadInput(manifest_.source + ": " + where + ": metric '" + metric + "' is not reported by task '" +
                   manifest_.at(PluginKind::Task).info->name + "' (it reports: " + list + ")" +
                   (near.empty() ? "" : "; did you mean '" + near + "'?"));
  }

  for (const auto& p : task_->model().parameters(true)) params_.push_back(p);
  layout_ = make_layout(task_->model());
  // task.init_from: the weights to start from, before the optimizer and the ranks see them;
  // a checkpoint to resume from wins.
  const Options& task_options = manifest_.at(PluginKind::Task).options;
  if (task_options.has("init_from") && !task_options.get_string("init_from").empty() &&
      !(run.resume && checkpointer_ && !checkpointer_->list().empty())) {
    const std::string& init_from = task_options.get_string("init_from");
    try {
      copy_weights_into(task_->model(), read_weights_file(init_from), "weights file " + init_from);
    } catch (const BadInput& e) {
      throw BadInput(std::string("task.init_from: ") + e.what());
    }
    logger_->info("initial weights from {}", init_from);
  }
  predicting_enabled_ = manifest_.at(PluginKind::DynamicsModel).info->name != "none";
  if (!manifest_.param_groups.empty()) {
    // [[param_groups]]: matched to the parameter names now that the model exists.
    std::vector<ParameterGroup> groups = assign_parameter_groups(manifest_.param_groups, layout_.names);
    for (std::size_t g = 0; g < groups.size(); ++g)
      logger_->info("{}", param_group_summary(manifest_.param_groups[g], groups[g], layout_.names));
    try {
      optimizer_->set_parameter_groups(groups);
      optimizer_->bind(params_, predicting_enabled_);  // splits the torch optimizer's groups
    } catch (const BadInput& e) {
      throw BadInput(manifest_.source + ": [[param_groups]]: optimizer '" +
                     manifest_.at(PluginKind::Optimizer).info->name + "': " + e.what());
    }
  } else {
    optimizer_->bind(params_, predicting_enabled_);
  }
  dynamics_->bind(layout_);
  plan_memory();
  if (distributed()) join_world();

  state_.max_steps = run.max_steps;
  summary_.run_dir = dir_ ? dir_->path() : "";
  progress_ = std::make_unique<Progress>(options_.progress, logger_,
                                         ProgressLayout{predicting_enabled_, run.target.has_value()});

  if (run.resume) resume_from_checkpoint();
  // The weight average and Lookahead's slow weights start from the weights now, unless a
  // checkpoint gave them.
  average_.start_if_due(*backend_, params_, state_.step);
  lookahead_.start(*backend_, params_);
  if (!restored_last_good_) take_last_good();
  progress_->start_from(state_);  // after a resume: the ETA counts this process's steps only
  if (!summary_.final_metrics.empty()) progress_->set_last_eval(metrics_text(summary_.final_metrics));
}

const std::string& Engine::run_dir() const { return summary_.run_dir; }

// ---------------------------------------------------------------------------------
// The loop

RunSummary Engine::run() {
  try {
    return train();
  } catch (const Interrupted&) {
    throw;  // summary.json says "interrupted" already
  } catch (const std::exception& e) {
    // summary.json says the run failed, why, and at which step; the checkpoints and
    // metrics so far stay.
    summary_.status = "failed";
    summary_.error = error_text(e);
    summary_.steps = state_.step;
    try {
      write_summary();
    } catch (const std::exception& also) {
      logger_->error("could not write summary.json: {}", also.what());
    }
    throw;
  }
}

RunSummary Engine::train() {
  logger_->info("run '{}' -> {}", manifest_.run.name, summary_.run_dir.empty() ? "(no run directory)" : summary_.run_dir);
  task_->model().train();
  summary_.status = "completed";
  maybe_record_trajectory();  // step 0: where the trajectory starts
  while (state_.step < state_.max_steps && !stop_) {
    PhaseDecision d = agreed(phase_->decide(state_));
    if (d.kind == PhaseKind::Predict && predicting_enabled_ && monitor_.forced_real_steps() > 0)
      d = {PhaseKind::Full, monitor_.forced_real_steps()};  // the divergence monitor wants real steps first
    if (d.kind == PhaseKind::Predict && predicting_enabled_) predicted_then_correct(d);
    else real_steps(d);
    maybe_save_checkpoint();
    progress_->update(state_, false);
  }
  check_ranks_in_sync(/*force=*/true);
  maybe_evaluate(true);
  progress_->update(state_, true);
  finish_checkpoints();
  write_final_weights();
  summary_.steps = state_.step;
  write_summary();
  return summary_;
}

// Every finished run leaves its weights in the run directory, checkpointer or not, in the
// layout of a checkpoint's model.pt (torch::nn::Module::save's archive: torch::load into
// the task's model reads it).
void Engine::write_final_weights() {
  if (!dir_) return;
  torch::nn::Module& model = task_->model();
  {
    torch::NoGradGuard no_grad;
    optimizer_->use_evaluation_weights(true);  // Schedule-Free: the weights it evaluates, not the ones it trains
    write_file_atomic(dir_->file("final_weights.pt"),
                      archive_bytes([&](StateWriter& state) { state.write_module_contents(model); }));
    // [averaging]: the averaged weights beside them, in the same layout (the model's buffers as they are).
    if (average_.started())
      with_averaged_weights([&]() {
        write_file_atomic(dir_->file("final_averaged_weights.pt"),
                          archive_bytes([&](StateWriter& state) { state.write_module_contents(model); }));
      });
    optimizer_->use_evaluation_weights(false);
  }
  // Beside them, the task's state: what `hpt sample` needs besides weights (char_lm: its vocabulary).
  write_file_atomic(dir_->file("final_task_state.pt"), archive_bytes([&](StateWriter& state) { task_->save(state); }));
}

void Engine::real_steps(const PhaseDecision& d) {
  StepKind kind = d.kind == PhaseKind::Correct ? StepKind::Correct : StepKind::Full;
  for (std::int64_t i = 0; i < std::max<std::int64_t>(1, d.length) && state_.step < state_.max_steps && !stop_; ++i) {
    real_step(kind);
    between_steps();
  }
}

// A phase and the real step after it are one unit: the step lets the correction
// strategy compare the forecast with a real update, so a stop signal waits for it.
void Engine::predicted_then_correct(const PhaseDecision& d) {
  std::int64_t kept = predicted_phase(monitor_.horizon_cap(std::max<std::int64_t>(1, d.length)));
  if (kept == 0) real_step(StepKind::Full);  // keep moving when a forecast was refused or rolled back
  else if (state_.step < state_.max_steps) real_step(StepKind::Correct);
  check_signal();
  maybe_evaluate(false);
}

void Engine::between_steps() {
  check_signal();
  check_ranks_in_sync(/*force=*/false);
  maybe_evaluate(false);
  maybe_save_checkpoint();
  maybe_record_trajectory();
  progress_->update(state_, false);
}

// run.record_trajectory: the weights every N step-equivalents, as trajectory/step_<N>.pt
// (a module archive, as final_weights.pt), for tools/nowcast_train. Written between steps,
// outside the training clock, as evaluations are.
void Engine::maybe_record_trajectory() {
  const std::int64_t every = manifest_.run.record_trajectory;
  if (every <= 0 || !dir_ || state_.step % every != 0 || state_.step == last_recorded_step_) return;
  last_recorded_step_ = state_.step;
  std::filesystem::create_directories(dir_->file("trajectory"));
  char name[64];
  std::snprintf(name, sizeof name, "trajectory/step_%09lld.pt", static_cast<long long>(state_.step));
  torch::nn::Module& model = task_->model();
  torch::NoGradGuard no_grad;
  write_file_atomic(dir_->file(name), archive_bytes([&](StateWriter& state) { state.write_module_contents(model); }));
}

// ---------------------------------------------------------------------------------
// A real step

void Engine::real_step(StepKind kind) {
  auto t0 = StepClock::now();
  StepRecord record;
  record.step = state_.step + 1;
  record.kind = kind;
  advance_batch_schedule();
  const double loss = train_on_next_batch(record);
  if (record.skipped) {
    // fp16 found inf/NaN gradients and applied nothing: the step-equivalent and its
    // passes are spent, but there is no update to learn from and nothing diverged (the
    // loss scale was too high, and has backed off).
    record.seconds = StepClock::seconds_since(t0);
    state_.step = record.step;
    ++state_.real_steps;
    count_real_step(record);
    record_step(record, "skipped");
    return;
  }
  Diagnosis diagnosis = monitor_.observe(loss, record.grad_norm);
  monitor_.took_real_step();
  if (diagnosis.alarm == Alarm::Critical) {
    // The step ran (its passes count); its result is discarded by the roll-back.
    record.seconds = StepClock::seconds_since(t0);
    state_.step = record.step;
    count_real_step(record);
    record_step(record);
    auto tr = StepClock::now();
    handle_diagnosis(diagnosis);  // rolls back, or throws after too many roll-backs
    clock_.charge_since(tr);
    return;
  }
  if (predicting_enabled_) learn_from_update(record);
  // Between real steps, whatever the optimizer: Lookahead's synchronisation, then the
  // weight average of the weights it leaves (docs/architecture.md, "One step of the engine").
  lookahead_.after_real_step(*backend_, params_);
  average_.after_real_step(*backend_, params_, record.step);
  if (monitor_.snapshot_due()) take_last_good();
  record.seconds = StepClock::seconds_since(t0);

  state_.step = record.step;
  ++state_.real_steps;
  ++state_.steps_since_phase;
  state_.last_loss = loss;
  state_.loss_ema = state_.real_steps == 1 ? loss : 0.95 * state_.loss_ema + 0.05 * loss;
  count_real_step(record);
  record_step(record);
  adapt_learning_rate(loss, record.grad_norm);
  handle_diagnosis(diagnosis);
}

double Engine::train_on_next_batch(StepRecord& record) {
  follow_curriculum();
  // [batch_schedule]: k task batches, their gradients accumulated, each loss divided by
  // k, so the step sees the gradient of the mean loss over k x batch_size examples.
  const std::int64_t k = batch_schedule_.multiplier();
  std::vector<Batch> batches;
  for (std::int64_t i = 0; i < k; ++i) batches.push_back(task_->next_batch());
  int forward = 0, backward = 0;
  torch::nn::Module& model = task_->model();
  Closure closure = [&]() {
    // Explicit: LibTorch 1.13 zero-fills by default and 2.x sets to none; the optimizers,
    // clipping and the loss scaler expect every gradient defined.
    model.zero_grad(/*set_to_none=*/false);
    torch::Tensor total;
    for (std::int64_t i = 0; i < k; ++i) {
      // Data parallel: every micro-batch is all-reduced (GradientSync leaves .grad at this
      // pass's mean over the ranks), so the earlier micro-batches' sum is held aside.
      std::vector<torch::Tensor> held;
      if (grad_sync_ && i > 0) {
        torch::NoGradGuard no_grad;
        for (const auto& p : params_) held.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
        model.zero_grad(/*set_to_none=*/false);
      }
      if (grad_sync_) grad_sync_->begin();
      torch::Tensor loss = forward_loss(batches[static_cast<std::size_t>(i)]);
      if (k > 1) loss = loss / static_cast<double>(k);
      ++forward;
      if (scaler_) scaler_->scale_loss(loss).backward();
      else loss.backward();
      ++backward;
      if (grad_sync_) {
        const double waited = grad_sync_->wait_seconds();
        grad_sync_->finish();  // every rank's .grad: the mean over the ranks
        summary_.allreduce_bytes += grad_sync_->bytes_per_step();
        summary_.allreduce_wait_seconds += grad_sync_->wait_seconds() - waited;
      }
      if (!held.empty()) {
        torch::NoGradGuard no_grad;
        for (std::size_t p = 0; p < params_.size(); ++p)
          if (held[p].defined()) params_[p].mutable_grad().add_(held[p]);
      }
      total = i == 0 ? loss.detach() : total + loss.detach();
    }
    return total;
  };
  if (scaler_) {
    record.loss = scaled_step(record, closure);
  } else {
    torch::Tensor loss_t = optimizer_->step(closure, record.step);
    record.loss = loss_t.item<double>();  // waits for the device
    record.grad_norm = optimizer_->last_grad_norm();
  }
  backend_->synchronize();
  if (distributed()) record.loss = agree_after_step(record.loss);
  record.learning_rate = optimizer_->learning_rate();
  record.forward_passes = forward;
  record.backward_passes = backward;
  return record.loss;
}

void Engine::follow_curriculum() {
  if (!curriculum_.enabled()) return;
  const std::optional<Curriculum::Change> change = curriculum_.before_batch(*task_, state_.step);
  if (!change) return;
  if (change->scored)
    logger_->info("curriculum: scored {} training examples with the model of step {}", change->examples, state_.step);
  logger_->info("curriculum: from step {} on, batches come from the easiest {} of {} examples ({:.1f}%)",
                state_.step + 1, change->pool, change->examples, 100.0 * change->pool / change->examples);
  metrics_.curriculum(state_.step, change->pool, change->examples, change->scored);
}

torch::Tensor Engine::forward_loss(const Batch& batch) {
  AutocastScope autocast(context_.device.type(), autocast_dtype_);
  return task_->loss(batch);
}

// fp16: forward and the scaled backward first, outside the optimizer, so that a step
// whose gradients overflowed is skipped whole (no weight decay, no momentum, no update),
// as GradScaler.step does; the optimizer then steps on the unscaled gradients, so its
// clipping sees true norms.
double Engine::scaled_step(StepRecord& record, const Closure& closure) {
  torch::Tensor loss = closure();
  const bool finite = scaler_->unscale(params_);
  scaler_->update(finite);
  if (!finite) {
    record.skipped = true;
    record.grad_norm = std::numeric_limits<double>::quiet_NaN();
    ++summary_.skipped_steps;
    logger_->debug("step {}: inf/NaN gradients under fp16, step skipped, loss scale now {}", record.step,
                   scaler_->scale());
    return loss.item<double>();
  }
  bool evaluated = false;
  Closure evaluated_once = [&]() {
    if (evaluated)
      throw RunError("[backend] precision = \"fp16\" needs an optimizer that evaluates the loss once per step; "
                     "optimizer '" + manifest_.at(PluginKind::Optimizer).info->name +
                     "' asked for a second evaluation: use precision = \"bf16\" or \"fp32\" with it");
    evaluated = true;
    return loss;
  };
  optimizer_->step(evaluated_once, record.step);
  record.grad_norm = optimizer_->last_grad_norm();
  return loss.item<double>();
}

void Engine::plan_memory() {
  std::int64_t param_bytes = 0;
  for (const auto& p : params_) param_bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
  memory_plan_ = MemoryPlan{};
  memory_plan_.add("parameters", param_bytes);
  memory_plan_.add("gradients", param_bytes);
  memory_plan_.add("optimizer state (" + manifest_.at(PluginKind::Optimizer).info->name + ")",
                   optimizer_->planned_state_bytes(params_));
  memory_plan_.add("last-good snapshot", param_bytes);
  if (average_.enabled()) memory_plan_.add("weight average", param_bytes);
  if (lookahead_.enabled()) memory_plan_.add("lookahead slow weights", param_bytes);
  if (predicting_enabled_) {
    memory_plan_.add("predicted-phase snapshot", param_bytes);
    memory_plan_.add("dynamics model (" + manifest_.at(PluginKind::DynamicsModel).info->name + ")",
                     dynamics_->planned_bytes(layout_));
  }
  logger_->debug("memory plan on {}: {}", context_.device.str(), memory_plan_.text());
  memory_plan_.check(precision_.memory_budget_gib, backend_->memory_use(), context_.device.str(),
                     manifest_.source + ": [backend] memory_budget");
}

void Engine::learn_from_update(StepRecord& record) {
  record.update = optimizer_->last_update();
  torch::Tensor norms = backend_->norms(record.update).to(torch::kCPU, torch::kFloat64).square();
  auto acc = norms.accessor<double, 1>();
  record.group_update_norms.assign(layout_.groups.size(), 0.0);
  for (std::size_t p = 0; p < params_.size(); ++p)
    record.group_update_norms[layout_.group_of[p]] += acc[static_cast<std::int64_t>(p)];
  for (auto& n : record.group_update_norms) n = std::sqrt(n);
  dynamics_->observe(record);
  state_.confidence = dynamics_->confidence();
  if (pending_forecast_) {
    correction_->observe_real(record, *pending_forecast_);
    pending_forecast_.reset();
  }
}

void Engine::count_real_step(const StepRecord& record) {
  ++summary_.real_steps;
  summary_.forward_passes += record.forward_passes;
  summary_.backward_passes += record.backward_passes;
}

// ---------------------------------------------------------------------------------
// A predicted phase

std::int64_t Engine::predicted_phase(std::int64_t horizon) {
  horizon = std::min(horizon, state_.max_steps - state_.step);
  if (horizon <= 0) return 0;
  auto t_phase = StepClock::now();
  auto t0 = StepClock::now();
  std::optional<Forecast> forecast = forecast_for(horizon);
  if (!forecast) {
    clock_.charge_since(t0);  // nothing to predict with: the time asked of the plugins still counts
    return 0;
  }
  horizon = std::min<std::int64_t>(horizon, forecast->horizon());
  std::vector<torch::Tensor> snapshot = backend_->snapshot(params_);
  clock_.charge_since(t0);

  const std::int64_t step_before = state_.step;
  PhaseOutcome outcome;
  outcome.planned = horizon;
  outcome.loss_before = outcome.loss_after = probe_loss();
  metrics_.begin_phase();  // its lines say at the end whether the phase was kept
  std::int64_t applied = 0;
  Verdict verdict = Verdict::Continue;
  while (applied < horizon && verdict == Verdict::Continue) {
    apply_predicted_step(*forecast, applied++);
    if (applied % manifest_.run.probe_interval != 0 && applied != horizon) continue;
    outcome.loss_after = probe_loss();
    if (std::isfinite(outcome.loss_after)) {
      verdict = correction_->judge(*forecast, applied, outcome.loss_after, outcome.loss_before);
    } else {
      logger_->warn("probe loss is {} after {} predicted steps: rolling back", outcome.loss_after, applied);
      verdict = Verdict::Rollback;
    }
  }
  outcome.applied = applied;
  if (verdict == Verdict::Rollback) {
    roll_back_phase(snapshot, step_before, applied);
    outcome.rolled_back = true;
    outcome.applied = 0;
  } else {
    keep_phase(std::move(*forecast), applied);
  }
  outcome.seconds = StepClock::seconds_since(t_phase);
  state_.steps_since_phase = 0;
  phase_->phase_ended(outcome);
  return outcome.applied;
}

std::optional<Forecast> Engine::forecast_for(std::int64_t horizon) {
  Forecast forecast = correction_->adjust(dynamics_->forecast(horizon));
  if (forecast.confidence <= 0.0 || forecast.horizon() == 0 || forecast.direction.size() != params_.size())
    return std::nullopt;
  if (!forecast.offset.empty() && forecast.offset.size() != params_.size())
    throw RunError("dynamics '" + manifest_.at(PluginKind::DynamicsModel).info->name + "' forecast an offset for " +
                   std::to_string(forecast.offset.size()) + " parameters; the model has " +
                   std::to_string(params_.size()));
  return forecast;
}

// Predicted step `index` (0-based) of the phase: the weights move by the forecast,
// no forward and no backward pass.
void Engine::apply_predicted_step(const Forecast& forecast, std::int64_t index) {
  auto t0 = StepClock::now();
  if (index == 0 && !forecast.offset.empty())
    backend_->add_scaled(params_, forecast.offset, std::vector<double>(params_.size(), 1.0));
  std::vector<double> scales(params_.size());
  for (std::size_t p = 0; p < params_.size(); ++p)
    scales[p] = forecast.scale[static_cast<std::size_t>(index)][layout_.group_of[p]];
  backend_->add_scaled(params_, forecast.direction, scales);
  backend_->synchronize();
  StepRecord r;
  r.step = state_.step + 1;
  r.kind = StepKind::Predicted;
  r.loss = forecast.loss.empty() ? state_.last_loss : forecast.loss[static_cast<std::size_t>(index)];
  r.learning_rate = optimizer_->learning_rate();
  r.seconds = StepClock::seconds_since(t0);
  state_.step = r.step;
  record_step(r);
}

void Engine::roll_back_phase(const std::vector<torch::Tensor>& snapshot, std::int64_t step_before,
                             std::int64_t applied) {
  metrics_.end_phase(/*rolled_back=*/true);
  auto t0 = StepClock::now();
  backend_->restore(params_, snapshot);
  backend_->synchronize();
  clock_.charge_since(t0);
  summary_.predicted_discarded += applied;
  ++summary_.rollbacks;
  ++state_.rollbacks;
  state_.step = step_before;
  handle_diagnosis(monitor_.phase_rolled_back());
  metrics_.rollback(state_.step, applied);
}

void Engine::keep_phase(Forecast forecast, std::int64_t applied) {
  metrics_.end_phase(/*rolled_back=*/false);
  summary_.predicted_steps += applied;
  state_.predicted_steps += applied;
  pending_forecast_ = std::move(forecast);  // the correction strategy compares it with the next real step
}

double Engine::probe_loss() {
  auto t0 = StepClock::now();
  double loss;
  {
    torch::InferenceMode guard;
    AutocastScope autocast(context_.device.type(), autocast_dtype_);
    loss = task_->loss(task_->probe_batch()).item<double>();
  }
  backend_->synchronize();
  StepRecord r;
  r.step = state_.step;
  r.kind = StepKind::Probe;
  r.loss = loss;
  r.learning_rate = optimizer_->learning_rate();
  r.seconds = StepClock::seconds_since(t0);
  ++summary_.probes;
  record_step(r);
  return loss;
}

// ---------------------------------------------------------------------------------
// Metrics, evaluation, stopping

void Engine::record_step(const StepRecord& r, const char* kind) {
  clock_.charge(r.seconds);
  metrics_.step(r, clock_.seconds(), kind);
}

std::vector<std::string> Engine::reported_metric_names() const {
  const std::vector<std::string> task_names = task_->metric_names();
  std::vector<std::string> names;
  if (average_.settings().evaluates_raw()) names = task_names;
  if (average_.settings().evaluates_average())
    for (const auto& n : task_names) names.push_back(kAveragedMetricPrefix + n);
  return names;
}

Metrics Engine::evaluate_weights() {
  torch::NoGradGuard guard;
  AutocastScope autocast(context_.device.type(), autocast_dtype_);
  task_->model().eval();
  Metrics m = task_->evaluate();
  task_->model().train();
  return m;
}

void Engine::with_averaged_weights(const std::function<void()>& use) {
  torch::NoGradGuard guard;
  std::vector<torch::Tensor> raw = backend_->snapshot(params_);
  backend_->restore(params_, average_.average());
  use();
  backend_->restore(params_, raw);
}

Metrics Engine::evaluate() {
  auto t0 = StepClock::now();
  torch::NoGradGuard no_grad;
  Metrics m;
  // Every rank swaps to the optimizer's evaluation weights and back, so they stay alike.
  optimizer_->use_evaluation_weights(true);
  if (!distributed() || options_.world.rank == 0) {
    EvaluationThreads threads(manifest_.run.eval_threads);
    if (average_.settings().evaluates_raw()) m = evaluate_weights();
    // [averaging]: the averaged weights swapped in, evaluated, swapped out; "avg.<metric>".
    if (average_.settings().evaluates_average() && average_.started())
      with_averaged_weights([&]() {
        for (const auto& [name, value] : evaluate_weights()) m[kAveragedMetricPrefix + name] = value;
      });
  }
  optimizer_->use_evaluation_weights(false);
  if (distributed()) {
    // Rank 0 evaluated (the weights are the same everywhere); every rank takes its metrics,
    // so that targets and early stopping decide alike.
    const std::vector<std::string> names = reported_metric_names();
    torch::Tensor values = torch::full({static_cast<std::int64_t>(names.size())},
                                       std::numeric_limits<double>::quiet_NaN(), torch::kFloat64);
    for (std::size_t i = 0; i < names.size(); ++i)
      if (m.count(names[i])) values[static_cast<std::int64_t>(i)] = m.at(names[i]);
    values = values.to(context_.device);
    backend_->broadcast({values}, 0);
    values = values.cpu();
    m.clear();
    for (std::size_t i = 0; i < names.size(); ++i) {
      const double value = values[static_cast<std::int64_t>(i)].item<double>();
      // The averaged weights' metrics before the average started: none.
      if (std::isnan(value) && names[i].rfind(kAveragedMetricPrefix, 0) == 0) continue;
      m[names[i]] = value;
    }
  }
  backend_->synchronize();
  double seconds = StepClock::seconds_since(t0);
  summary_.eval_seconds += seconds;
  ++summary_.evaluations;
  summary_.final_metrics = m;
  last_eval_step_ = state_.step;
  optimizer_->on_evaluation(m);
  summary_.memory = backend_->memory_use();
  metrics_.eval(state_.step, clock_.seconds(), seconds, summary_.backward_passes, m, summary_.memory,
                predicting_enabled_ ? std::optional<std::int64_t>(state_.predicted_steps) : std::nullopt);
  progress_->set_last_eval(metrics_text(m));
  logger_->debug("eval at step {}: {}", state_.step, metrics_text(m));
  return m;
}

bool Engine::target_reached(const Metrics& m) {
  const auto& t = manifest_.run.target;
  if (!t || summary_.seconds_to_target) return false;
  auto it = m.find(t->metric);
  if (it == m.end()) return false;
  bool hit = t->maximize ? it->second >= t->value : it->second <= t->value;
  if (hit) {
    summary_.seconds_to_target = clock_.seconds();
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
  // Forced at the end, unless this step's evaluation is known (a checkpoint written before
  // engine.pt kept the final metrics restores the step of the last evaluation only).
  if (!(due || (force && (last_eval_step_ != state_.step || summary_.final_metrics.empty())))) return;
  Metrics m = evaluate();
  const auto& target = manifest_.run.target;
  const bool reached_now = target_reached(m);
  if (reached_now)
    logger_->info("target {} reached at step {} after {:.2f}s of training{}", target->metric, state_.step,
                  clock_.seconds(),
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

void Engine::check_signal() {
  int signal = take_stop_signal();
  if (distributed()) {
    // A signal stops every rank at the same step: the next real step's all-reduce tells
    // the others (agree_after_step), and all of them stop after it.
    if (signal != 0) local_stop_signal_ = signal;
    if (!agreed_stop_) return;
    signal = local_stop_signal_ != 0 ? local_stop_signal_ : SIGTERM;
  }
  if (signal == 0) return;
  progress_->update(state_, true);
  logger_->warn("{} received at step {}: {}", signal_name(signal), state_.step,
                checkpointer_ ? "writing a final checkpoint and stopping"
                              : "stopping (no [checkpointer] section: no checkpoint is written)");
  finish_checkpoints();
  summary_.status = "interrupted";
  summary_.steps = state_.step;
  write_summary();
  throw Interrupted(signal, checkpointer_ != nullptr);
}

void Engine::write_summary() {
  logger_->flush();
  if (summary_.status != "failed") {
    metrics_.flush();
  } else {
    try {
      metrics_.flush();
    } catch (const std::exception&) {
      // The failure may be metrics.jsonl's own (a full disk): summary.json still says why.
    }
  }
  if (!dir_) return;
  dir_->write_file("summary.json", summary_document(summary_, manifest_));
}

// ---------------------------------------------------------------------------------
// Divergence

void Engine::take_last_good() {
  last_good_params_ = backend_->snapshot(params_);
  last_good_optimizer_ = archive_bytes([&](auto& a) { optimizer_->save(a); });
  lr_cut_since_last_good_ = 1.0;
  monitor_.snapshot_taken();
}

void Engine::handle_diagnosis(const Diagnosis& d) {
  if (d.alarm == Alarm::None) return;
  metrics_.divergence(state_.step, to_string(d.alarm), d.reason);
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
  lr_cut_since_last_good_ *= s.lr_cut;
  optimizer_->scale_learning_rate(lr_cut_since_last_good_);
  pending_forecast_.reset();  // it forecast the trajectory just discarded
  monitor_.reset_statistics();
  stability_.rolled_back();  // its statistics describe the discarded trajectory too
  logger_->warn("step {}: {}; rolled back to the last good state and cut the learning rate to {:g}x ({:g})",
                state_.step, d.reason, lr_cut_since_last_good_, optimizer_->learning_rate() * lr_cut_since_last_good_);
}


// ---------------------------------------------------------------------------------
// The engine's learning-rate factors: [stability], [batch_schedule], roll-backs

void Engine::scale_learning_rate(double factor) {
  optimizer_->scale_learning_rate(factor);
  lr_cut_since_last_good_ *= factor;
}

void Engine::advance_batch_schedule() {
  const std::optional<BatchSchedule::Change> change = batch_schedule_.advance(state_.step);
  if (!change) return;
  if (change->lr_factor != 1.0) scale_learning_rate(change->lr_factor);
  logger_->info("batch schedule: from step {} on, {} batches per real step (was {}){}", state_.step + 1, change->to,
                change->from,
                change->lr_factor != 1.0
                    ? fmt::format("; learning rate x{:g} ({})", change->lr_factor, batch_schedule_.settings().lr_rule)
                    : std::string());
  metrics_.batch_schedule(state_.step, change->to, change->from, change->lr_factor);
}

void Engine::adapt_learning_rate(double loss, double grad_norm) {
  if (!stability_.enabled()) return;
  const StabilityLr::Change change = stability_.observe(loss, grad_norm);
  if (change.factor == 1.0) return;
  scale_learning_rate(change.factor);
  const char* action = change.cut ? "cut" : "grow";
  if (change.cut)
    logger_->info("stability: step {}: {}; learning rate cut by {:g} to {:g}x the configured rate", state_.step,
                  change.reason, change.factor, stability_.scale());
  else
    logger_->debug("stability: step {}: {}; learning rate raised by {:g} to {:g}x the configured rate", state_.step,
                   change.reason, change.factor, stability_.scale());
  metrics_.stability(state_.step, action, change.factor, stability_.scale(), change.reason);
}

}  // namespace hpt::host
