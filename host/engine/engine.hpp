// The training engine: the phase loop of docs/architecture.md over the plugins a
// resolved manifest names.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"
#include "checkpoint/background_save.hpp"
#include "checkpoint/checkpoint_snapshot.hpp"
#include "config/manifest.hpp"
#include "config/distributed_settings.hpp"
#include "config/precision_settings.hpp"
#include "engine/autocast_scope.hpp"
#include "engine/batch_schedule.hpp"
#include "engine/curriculum.hpp"
#include "engine/divergence_monitor.hpp"
#include "engine/gradient_sync.hpp"
#include "engine/lookahead.hpp"
#include "engine/loss_scaler.hpp"
#include "engine/memory_plan.hpp"
#include "engine/stability_lr.hpp"
#include "engine/step_clock.hpp"
#include "engine/weight_average.hpp"
#include "output/metrics_log.hpp"
#include "output/progress.hpp"
#include "output/run_directory.hpp"
#include "output/run_summary.hpp"
#include "plugins/plugin_loader.hpp"
#include "process/stop_signal.hpp"

namespace hpt::host {

// A checkpoint that belongs to another model (a parameter missing, extra, or of another
// shape). Unlike a corrupt file, an older checkpoint of the same run will not fit either.
struct CheckpointMismatch : BadInput {
  using BadInput::BadInput;
};

struct EngineOptions {
  bool overwrite = false;        // replace an existing run directory
  bool write_run_dir = true;     // false: no run directory at all (tests)
  int progress = -1;             // 1: progress bar, 0: plain lines, -1: bar when stderr is a terminal
  // Data parallelism: the world this process is a rank of (size 1: a single-process run).
  // Rank 0 alone writes the run directory; the other ranks read its checkpoints on resume.
  World world;
};

class Engine {
 public:
  Engine(ResolvedManifest manifest, PluginLoader& loader, EngineOptions options = {});
  ~Engine();

  // Trains until run.max_steps, run.target or run.early_stop, and writes summary.json.
  RunSummary run();

  // The pieces run() is made of, public so tests can drive a phase at a time.
  void real_step(StepKind kind);                 // one Full or Correct step
  std::int64_t predicted_phase(std::int64_t horizon);  // returns predicted steps kept
  Metrics evaluate();

  Task& task() { return *task_; }
  Optimizer& optimizer() { return *optimizer_; }
  Backend& backend() { return *backend_; }
  DynamicsModel& dynamics() { return *dynamics_; }
  const std::vector<torch::Tensor>& parameters() const { return params_; }
  const ParameterLayout& layout() const { return layout_; }
  const RunSummary& summary() const { return summary_; }
  const TrainingState& state() const { return state_; }
  const MemoryPlan& memory_plan() const { return memory_plan_; }
  const LossScaler* loss_scaler() const { return scaler_ ? &*scaler_ : nullptr; }
  const std::shared_ptr<spdlog::logger>& logger() const { return logger_; }
  const WeightAverage& weight_average() const { return average_; }  // [averaging]
  const Lookahead& lookahead() const { return lookahead_; }          // [lookahead]
  const StabilityLr& stability() const { return stability_; }        // [stability]
  const BatchSchedule& batch_schedule() const { return batch_schedule_; }  // [batch_schedule]
  const Curriculum& curriculum() const { return curriculum_; }       // [curriculum]
  // The metrics an evaluation reports: the task's, and "avg.<name>" for the averaged
  // weights ([averaging] evaluate), in the order evaluate() fills them.
  std::vector<std::string> reported_metric_names() const;
  const std::string& run_dir() const;

  // Checkpoint content (every plugin's state, the engine's counters and the resolved
  // manifest) and its inverse. restore_checkpoint() first checks that the checkpoint's
  // parameters match the model's names and shapes (CheckpointMismatch otherwise).
  std::vector<CheckpointFile> checkpoint_files() const;
  void restore_checkpoint(const std::vector<CheckpointFile>& files, const std::string& path = "checkpoint");

  // The same content frozen in memory: every plugin's save() runs now, on this thread,
  // and every tensor it wrote is cloned, so training may go on changing the live
  // tensors. files() (any thread, later) then returns the content checkpoint_files()
  // returned at the snapshot's step (the same tensors and values; archive bytes differ
  // from save to save anyway). This is what a background save writes.
  using CheckpointSnapshot = FrozenCheckpoint;
  CheckpointSnapshot checkpoint_snapshot() const;

 private:
  void start(PluginLoader& loader);  // the plugins, the parameters, the checkpoint to resume from
  RunSummary train();                // run() without its failure handling

  // The loop of run(), as in docs/architecture.md ("One step of the engine").
  void real_steps(const PhaseDecision& decision);       // d.length Full or Correct steps
  void predicted_then_correct(const PhaseDecision& decision);
  void between_steps();                                  // signal, evaluation, checkpoint, progress
  void maybe_record_trajectory();                       // run.record_trajectory

  // A real step's parts.
  double train_on_next_batch(StepRecord& record);        // forward, backward, optimizer step; the loss
  torch::Tensor forward_loss(const Batch& batch);        // the task's loss, under autocast when asked
  void follow_curriculum();                              // [curriculum]: scores, restricts the examples when due
  double scaled_step(StepRecord& record, const Closure& closure);  // fp16: scaled backward, maybe no step
  void plan_memory();                                    // the memory plan, checked before the first step

  // Data parallelism (docs/architecture.md, "Data-parallel training").
  bool distributed() const { return options_.world.size > 1; }
  void join_world();                                     // the backend joins, rank 0's weights everywhere
  double agree_after_step(double local_loss);            // mean loss over the ranks; a stop any rank wants
  PhaseDecision agreed(PhaseDecision decision);          // rank 0's decision, on every rank
  void check_ranks_in_sync(bool force);                  // [distributed] check_sync: same parameters
  void learn_from_update(StepRecord& record);            // the dynamics model and correction observe it
  void count_real_step(const StepRecord& record);

  // A predicted phase's parts.
  std::optional<Forecast> forecast_for(std::int64_t horizon);  // none: nothing to predict with
  void apply_predicted_step(const Forecast& forecast, std::int64_t index);
  void roll_back_phase(const std::vector<torch::Tensor>& snapshot, std::int64_t step_before, std::int64_t applied);
  void keep_phase(Forecast forecast, std::int64_t applied);
  double probe_loss();

  // Metrics and accounting.
  void record_step(const StepRecord& record, const char* kind = nullptr);  // charges its time, logs it
  void maybe_evaluate(bool force);
  bool target_reached(const Metrics& metrics);
  bool early_stop_now(const Metrics& metrics);
  void check_signal();
  void write_summary();
  void write_final_weights();  // final_weights.pt (and final_averaged_weights.pt) in the run directory
  Metrics evaluate_weights();   // the task's evaluate() on the weights as they are (no-grad)
  // Runs `use` with the averaged weights in the parameters, then puts the weights back bit for bit.
  void with_averaged_weights(const std::function<void()>& use);

  // Divergence: the monitor's alarms, and the last good state it rolls back to.
  void handle_diagnosis(const Diagnosis& d);
  void take_last_good();
  // Every learning-rate factor of the engine's own ([stability], [batch_schedule], a
  // roll-back's cut) goes through here: it also enters lr_cut_since_last_good_, so a
  // roll-back to the last good state re-applies it.
  void scale_learning_rate(double factor);
  void advance_batch_schedule();                            // before a real step
  void adapt_learning_rate(double loss, double grad_norm);  // [stability], after a kept real step

  // Checkpoints (engine_checkpoints.cpp; "Checkpoints and resume" in docs/architecture.md).
  // One entry per state file, in the order written and read.
  struct StateFile {
    const char* name;
    std::function<void(StateWriter&)> save;
    std::function<void(torch::serialize::InputArchive&)> load;
    bool optional = false;  // a checkpoint without it is read (the state keeps its start value)
  };
  std::vector<StateFile> make_state_files();
  template <class Self, class Visit>
  static void visit_counters(Self& self, Visit&& visit);  // engine.pt: every counter, by name
  void maybe_save_checkpoint();
  void save_checkpoint(bool final = false);
  void wait_for_checkpoint();
  void finish_checkpoints();
  void resume_from_checkpoint();
  void save_last_good(hpt::StateWriter& state) const;
  bool load_last_good(torch::serialize::InputArchive& archive);  // false: the archive has none

  ResolvedManifest manifest_;
  EngineOptions options_;
  std::unique_ptr<RunDirectory> dir_;
  std::shared_ptr<spdlog::logger> logger_;
  MetricsLog metrics_;
  PluginContext context_;

  std::shared_ptr<Backend> backend_;
  std::shared_ptr<Task> task_;
  std::shared_ptr<Optimizer> optimizer_;
  std::shared_ptr<DynamicsModel> dynamics_;
  std::shared_ptr<CorrectionStrategy> correction_;
  std::shared_ptr<PhaseController> phase_;
  std::shared_ptr<Checkpointer> checkpointer_;
  std::vector<StateFile> state_files_;
  bool background_checkpoints_ = false;             // [checkpointer] background
  std::unique_ptr<BackgroundSave> pending_save_;    // the background save in flight

  PrecisionSettings precision_;               // [backend] precision, loss scaling, memory_budget
  c10::ScalarType autocast_dtype_ = c10::ScalarType::Float;  // Float: no autocast
  std::optional<LossScaler> scaler_;          // fp16 only
  MemoryPlan memory_plan_;

  DistributedSettings distributed_;
  std::unique_ptr<GradientSync> grad_sync_;   // world size > 1
  int local_stop_signal_ = 0;                 // a signal this rank received, not yet agreed on
  bool agreed_stop_ = false;                  // some rank received one: every rank stops
  std::int64_t last_sync_check_ = 0;

  std::vector<torch::Tensor> params_;
  ParameterLayout layout_;
  bool predicting_enabled_ = false;
  std::optional<Forecast> pending_forecast_;  // the last phase's forecast, for the next real step

  TrainingState state_;
  RunSummary summary_;
  StepClock clock_{summary_.train_seconds, state_.seconds};
  std::int64_t last_eval_step_ = 0;
  std::int64_t last_checkpoint_step_ = 0;
  double last_checkpoint_seconds_ = 0.0;
  std::optional<double> best_metric_;
  std::int64_t evals_without_improvement_ = 0;
  bool stop_ = false;

  DivergenceMonitor monitor_;
  WeightAverage average_;   // [averaging]
  Lookahead lookahead_;     // [lookahead]
  StabilityLr stability_;   // [stability]
  BatchSchedule batch_schedule_;  // [batch_schedule]
  Curriculum curriculum_;   // [curriculum]
  std::vector<torch::Tensor> last_good_params_;
  std::string last_good_optimizer_;
  std::int64_t critical_rollbacks_ = 0;
  // The product of the learning-rate factors (the monitor's cuts, [stability]'s and
  // [batch_schedule]'s) since the last good state was taken: a roll-back restores that
  // state's learning rate and applies all of them, so cuts compound.
  double lr_cut_since_last_good_ = 1.0;
  std::int64_t last_recorded_step_ = -1;  // run.record_trajectory: the last step written
  bool restored_last_good_ = false;  // a checkpoint gave the last good state
  std::uint64_t metrics_length_ = 0;  // metrics.jsonl's length at the last checkpoint (synced)
  std::unique_ptr<Progress> progress_;
};

// Groups parameters by module: "features.0.weight" and "features.0.bias" form "features.0".
ParameterLayout make_layout(const torch::nn::Module& model);

}  // namespace hpt::host
