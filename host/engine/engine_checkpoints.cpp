// The engine's side of checkpoints: what a checkpoint holds (one state file per
// component and the engine's own counters), restoring it, and when and how it is saved
// (in the foreground, or frozen and written by a BackgroundSave).
#include <algorithm>
#include <cstring>
#include <limits>


#include "checkpoint/archive_io.hpp"
#include "hpt/torch_compat.hpp"
#include "checkpoint/checkpoint_tools.hpp"
#include "engine/engine.hpp"

namespace hpt::host {

namespace {

torch::Tensor cpu_rng_state() {
  at::Generator gen = hpt::default_cpu_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const torch::Tensor& state) {
  at::Generator gen = hpt::default_cpu_generator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

}  // namespace

// engine.pt: every counter the engine keeps, by name. One list serves saving and loading.
template <class Self, class Visit>
void Engine::visit_counters(Self& self, Visit&& visit) {
  visit("step", self.state_.step);
  visit("real_steps", self.state_.real_steps);
  visit("predicted_steps", self.state_.predicted_steps);
  visit("steps_since_phase", self.state_.steps_since_phase);
  visit("rollbacks", self.state_.rollbacks);
  visit("last_loss", self.state_.last_loss);
  visit("loss_ema", self.state_.loss_ema);
  visit("confidence", self.state_.confidence);
  visit("s_real_steps", self.summary_.real_steps);
  visit("s_predicted_steps", self.summary_.predicted_steps);
  visit("s_predicted_discarded", self.summary_.predicted_discarded);
  visit("s_probes", self.summary_.probes);
  visit("s_rollbacks", self.summary_.rollbacks);
  visit("s_divergence_rollbacks", self.summary_.divergence_rollbacks);
  visit("critical_rollbacks", self.critical_rollbacks_);
  visit("s_forward", self.summary_.forward_passes);
  visit("s_backward", self.summary_.backward_passes);
  visit("s_evaluations", self.summary_.evaluations);
  visit("s_train_seconds", self.summary_.train_seconds);
  visit("s_eval_seconds", self.summary_.eval_seconds);
  visit("last_eval_step", self.last_eval_step_);
  visit("evals_without_improvement", self.evals_without_improvement_);
  visit("lr_cut_since_last_good", self.lr_cut_since_last_good_);
  visit("s_skipped_steps", self.summary_.skipped_steps);
  visit("s_allreduce_bytes", self.summary_.allreduce_bytes);
  visit("s_allreduce_wait_seconds", self.summary_.allreduce_wait_seconds);
}

std::vector<Engine::StateFile> Engine::make_state_files() {
  auto plugin = [](const char* name, Plugin* component) {
    return StateFile{name, [component](StateWriter& state) { component->save(state); },
                     [component](torch::serialize::InputArchive& a) { component->load(a); }};
  };
  torch::nn::Module* model = &task_->model();
  std::vector<StateFile> files = {
      StateFile{"model.pt", [model](StateWriter& state) { state.write_module_contents(*model); },
                [model](torch::serialize::InputArchive& a) { model->load(a); }},
      plugin("optimizer.pt", optimizer_.get()),
      plugin("task.pt", task_.get()),
      plugin("dynamics.pt", dynamics_.get()),
      plugin("correction.pt", correction_.get()),
      plugin("phase.pt", phase_.get()),
      plugin("backend.pt", backend_.get()),
      StateFile{"engine.pt",
                [this](hpt::StateWriter& state) {
                  visit_counters(*this, [&](const char* key, auto value) {
                    using V = decltype(value);
                    state.write(key, torch::tensor(value, std::is_integral_v<V> ? torch::kInt64 : torch::kFloat64));
                  });
                  if (best_metric_) state.write("best_metric", torch::tensor(*best_metric_, torch::kFloat64));
                  state.write("rng", cpu_rng_state());
                  state.write("metrics_length", torch::tensor(static_cast<std::int64_t>(metrics_length_), torch::kInt64));
                  // The last evaluation's metrics: a run resumed at its last step still reports them.
                  std::vector<std::string> metric_names;
                  std::vector<double> metric_values;
                  for (const auto& [name, value] : summary_.final_metrics) {
                    metric_names.push_back(name);
                    metric_values.push_back(value);
                  }
                  state.write("final_metric_names", c10::IValue(metric_names));
                  state.write("final_metric_values", torch::tensor(metric_values, torch::kFloat64));
                  monitor_.save(state);
                  if (stability_.enabled()) stability_.save(state);
                  if (batch_schedule_.enabled()) batch_schedule_.save(state);
                  if (scaler_) scaler_->save(state);
                  save_last_good(state);
                },
                [this](torch::serialize::InputArchive& a) {
                  visit_counters(*this, [&](const char* key, auto& value) {
                    torch::Tensor t;
                    // A counter added after the checkpoint was written keeps its start value.
                    if (a.try_read(key, t)) value = t.item<std::remove_reference_t<decltype(value)>>();
                  });
                  clock_.set(summary_.train_seconds);
                  torch::Tensor t;
                  if (a.try_read("best_metric", t)) best_metric_ = t.item<double>();
                  torch::Tensor rng;
                  a.read("rng", rng);
                  set_cpu_rng_state(rng);
                  monitor_.load(a);
                  stability_.load(a);        // none in the archive: the start state
                  batch_schedule_.load(a);
                  if (scaler_) scaler_->load(a);
                  restored_last_good_ = load_last_good(a);
                  c10::IValue metric_names;
                  torch::Tensor metric_values;
                  if (a.try_read("final_metric_names", metric_names) && a.try_read("final_metric_values", metric_values)) {
                    summary_.final_metrics.clear();
                    const auto names = metric_names.toListRef();
                    for (std::size_t i = 0; i < names.size() && static_cast<std::int64_t>(i) < metric_values.numel(); ++i)
                      summary_.final_metrics[names[i].toStringRef()] =
                          metric_values[static_cast<std::int64_t>(i)].item<double>();
                  }
                  torch::Tensor length;
                  metrics_length_ = a.try_read("metrics_length", length)
                                        ? static_cast<std::uint64_t>(length.item<std::int64_t>())
                                        : std::numeric_limits<std::uint64_t>::max();  // not recorded: keep every line
                }},
  };
  // [averaging] and [lookahead]: their state, when the run has them. A checkpoint written
  // without them (the section added on resume) starts them afresh from the weights.
  if (average_.enabled())
    files.push_back(StateFile{"averaging.pt", [this](StateWriter& state) { average_.save(state, layout_.names); },
                              [this](torch::serialize::InputArchive& a) { average_.load(a, params_); },
                              /*optional=*/true});
  if (lookahead_.enabled())
    files.push_back(StateFile{"lookahead.pt", [this](StateWriter& state) { lookahead_.save(state); },
                              [this](torch::serialize::InputArchive& a) { lookahead_.load(a, params_); },
                              /*optional=*/true});
  // [curriculum]: the ordering and the pool size (the task keeps its restriction in task.pt).
  if (curriculum_.enabled())
    files.push_back(StateFile{"curriculum.pt", [this](StateWriter& state) { curriculum_.save(state); },
                              [this](torch::serialize::InputArchive& a) { curriculum_.load(a); },
                              /*optional=*/true});
  return files;
}

// The last good state the divergence monitor rolls back to: its parameters and the
// optimizer's state, as they were when it was taken.
void Engine::save_last_good(hpt::StateWriter& state) const {
  state.write("last_good/count", torch::tensor(static_cast<std::int64_t>(last_good_params_.size()), torch::kInt64));
  for (std::size_t i = 0; i < last_good_params_.size(); ++i)
    state.write("last_good/param_" + std::to_string(i), last_good_params_[i]);
  torch::Tensor bytes = torch::empty({static_cast<std::int64_t>(last_good_optimizer_.size())}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<std::uint8_t>(), last_good_optimizer_.data(), last_good_optimizer_.size());
  state.write("last_good/optimizer", bytes);
}

bool Engine::load_last_good(torch::serialize::InputArchive& a) {
  torch::Tensor count, bytes;
  if (!a.try_read("last_good/count", count)) return false;  // an older checkpoint
  std::vector<torch::Tensor> params(static_cast<std::size_t>(count.item<std::int64_t>()));
  for (std::size_t i = 0; i < params.size(); ++i) a.read("last_good/param_" + std::to_string(i), params[i]);
  a.read("last_good/optimizer", bytes);
  if (params.size() != params_.size()) return false;
  for (std::size_t i = 0; i < params.size(); ++i) params[i] = params[i].to(params_[i].device());
  last_good_params_ = std::move(params);
  last_good_optimizer_.assign(reinterpret_cast<const char*>(bytes.data_ptr<std::uint8_t>()),
                              static_cast<std::size_t>(bytes.numel()));
  return true;
}

std::vector<CheckpointFile> Engine::checkpoint_files() const {
  std::vector<CheckpointFile> files;
  for (const StateFile& f : state_files_)
    files.push_back({f.name, archive_bytes([&](hpt::StateWriter& state) { f.save(state); })});
  files.push_back({"config.resolved.toml", manifest_.to_toml()});
  return files;
}

Engine::CheckpointSnapshot Engine::checkpoint_snapshot() const {
  CheckpointSnapshot snapshot;
  for (const StateFile& f : state_files_) snapshot.add_archive(f.name, f.save);
  snapshot.add_file({"config.resolved.toml", manifest_.to_toml()});
  return snapshot;
}

void Engine::restore_checkpoint(const std::vector<CheckpointFile>& files, const std::string& path) {
  auto find = [&](const std::string& name) -> const std::string& {
    for (const auto& f : files)
      if (f.name == name) return f.bytes;
    throw BadInput(path + " has no " + name);
  };
  // The same parameters, by name and shape, before anything is loaded.
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
  for (const StateFile& f : state_files_) {
    const bool present = std::any_of(files.begin(), files.end(), [&](const auto& c) { return c.name == f.name; });
    if (!present && f.optional) {
      logger_->warn("{} has no {}: its state starts afresh from the checkpoint's weights", path, f.name);
      continue;
    }
    read_archive(find(f.name), f.load);
  }
  last_checkpoint_step_ = state_.step;
  last_checkpoint_seconds_ = clock_.seconds();
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
      metrics_.resume(state_.step, c.path, metrics_length_);
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

// ---------------------------------------------------------------------------------
// Saving

Engine::~Engine() {
  // A background save still running (training failed meanwhile) finishes before the
  // checkpointer goes away; its own failure is only logged, the run has failed already.
  if (!pending_save_) return;
  try {
    pending_save_->wait();
  } catch (const std::exception& e) {
    logger_->error("{}", e.what());
  }
}

void Engine::maybe_save_checkpoint() {
  if (!checkpointer_ || options_.world.rank != 0) return;  // rank 0 writes for every rank: they are the same
  // A background save that has finished is collected now, so that its error (if any)
  // stops the run at once and its figures reach metrics.jsonl.
  if (pending_save_ && pending_save_->finished()) wait_for_checkpoint();
  if (last_checkpoint_step_ != state_.step &&
      checkpointer_->due(state_.step, clock_.seconds() - last_checkpoint_seconds_))
    save_checkpoint();
}

void Engine::save_checkpoint(bool final) {
  wait_for_checkpoint();  // at most one save in flight, and in step order
  auto t0 = StepClock::now();
  for (std::size_t p = 0; p < params_.size(); ++p)
    if (!torch::isfinite(params_[p]).all().item<bool>()) {
      logger_->error("not writing a checkpoint at step {}: parameter {} is not finite", state_.step, layout_.names[p]);
      return;
    }
  Metrics metrics = summary_.final_metrics;
  metrics_length_ = metrics_.sync();  // metrics.jsonl is on disk up to here before the checkpoint exists
  last_checkpoint_step_ = state_.step;
  last_checkpoint_seconds_ = clock_.seconds();
  // The last save of a run gains nothing from a thread: the run waits for it anyway.
  if (!background_checkpoints_ || final) {
    CheckpointInfo info = checkpointer_->save(state_.step, checkpoint_files(), metrics);
    double seconds = StepClock::seconds_since(t0);
    summary_.checkpoint_seconds += seconds;
    summary_.checkpoint_stall_seconds += seconds;
    logger_->debug("checkpoint step {} -> {} ({:.3f}s)", state_.step, info.path, seconds);
    metrics_.checkpoint(state_.step, info.path, seconds, seconds, std::nullopt);
    return;
  }
  auto frozen = std::make_shared<FrozenCheckpoint>(checkpoint_snapshot());
  backend_->synchronize();  // the clones are complete before another thread reads them
  pending_save_ = std::make_unique<BackgroundSave>(checkpointer_, state_.step, std::move(frozen), std::move(metrics),
                                                   StepClock::seconds_since(t0));
}

// Joins the background save in flight, if any. Its failure fails the run here: the
// checkpoint the run believes it has does not exist.
void Engine::wait_for_checkpoint() {
  if (!pending_save_) return;
  std::unique_ptr<BackgroundSave> pending = std::move(pending_save_);
  BackgroundSave::Done done = pending->wait();
  summary_.checkpoint_seconds += done.seconds;
  summary_.checkpoint_stall_seconds += done.stall_seconds;
  logger_->debug("checkpoint step {} -> {} ({:.3f}s, training stalled {:.3f}s)", done.step, done.info.path,
                 done.seconds, done.stall_seconds);
  metrics_.checkpoint(done.step, done.info.path, done.seconds, done.stall_seconds, done.snapshot_seconds);
}

// The end of a run (or a signal): a checkpoint of the current step, and nothing in flight.
void Engine::finish_checkpoints() {
  if (!checkpointer_ || options_.world.rank != 0) return;
  if (last_checkpoint_step_ != state_.step) save_checkpoint(/*final=*/true);
  wait_for_checkpoint();
}

}  // namespace hpt::host
