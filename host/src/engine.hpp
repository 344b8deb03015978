// The training engine: the phase loop of docs/architecture.md over the plugins a
// resolved manifest names.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "hpt/hpt.hpp"
#include "divergence_monitor.hpp"
#include "manifest.hpp"
#include "plugin_loader.hpp"
#include "run_directory.hpp"

namespace hpt::host {

// What a run did, as written to summary.json.
struct RunSummary {
  std::string status;         // "completed", "target_reached", "early_stopped", "interrupted"
  std::string run_dir;
  std::int64_t steps = 0;     // step-equivalents: real + predicted steps kept
  std::int64_t real_steps = 0;
  std::int64_t predicted_steps = 0;  // kept
  std::int64_t predicted_discarded = 0;  // applied, then rolled back
  std::int64_t probes = 0;
  std::int64_t rollbacks = 0;        // predicted phases rolled back
  std::int64_t divergence_rollbacks = 0;  // roll-backs to the last good state after a critical alarm
  std::int64_t forward_passes = 0;   // training forward passes (probes and evaluation apart)
  std::int64_t backward_passes = 0;
  double train_seconds = 0.0;        // every step's wall time, probes included; evaluation excluded
  double eval_seconds = 0.0;
  double checkpoint_seconds = 0.0;       // time the checkpoints took, background work included
  double checkpoint_stall_seconds = 0.0; // of which the training thread waited (all of it in the foreground)
  std::optional<double> seconds_to_target;
  std::optional<std::int64_t> steps_to_target;
  std::optional<std::int64_t> backward_passes_to_target;
  Metrics final_metrics;             // the last evaluation
  std::int64_t evaluations = 0;

  boost::json::object to_json() const;
};

// Thrown by Engine::run() after a SIGINT or SIGTERM, once the current step finished,
// a checkpoint was written (when a checkpointer is configured) and summary.json says
// "interrupted". The CLI exits with 128 + signal (130 for SIGINT, 143 for SIGTERM).
struct Interrupted : std::runtime_error {
  explicit Interrupted(int signal);
  int signal;
};

// A checkpoint that belongs to another model (a parameter missing, extra, or of another
// shape). Unlike a corrupt file, an older checkpoint of the same run will not fit either.
struct CheckpointMismatch : BadInput {
  using BadInput::BadInput;
};

// Makes SIGINT and SIGTERM stop a run cleanly at the next step boundary.
void install_signal_handlers();

struct EngineOptions {
  bool overwrite = false;        // replace an existing run directory
  bool write_run_dir = true;     // false: no run directory at all (tests)
  int progress = -1;             // 1: progress bar, 0: plain lines, -1: bar when stderr is a terminal
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
  const std::shared_ptr<spdlog::logger>& logger() const { return logger_; }
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
  class CheckpointSnapshot {
   public:
    std::vector<CheckpointFile> files() const;

   private:
    friend class Engine;
    std::vector<std::pair<std::string, torch::jit::Module>> archives_;  // deep copies
    std::vector<CheckpointFile> plain_;                                 // text files, last
  };
  CheckpointSnapshot checkpoint_snapshot() const;

 private:
  struct Progress;
  void record_step(const StepRecord& record, const char* extra_kind = nullptr);
  void maybe_evaluate(bool force);
  bool target_reached(const Metrics& metrics);
  bool early_stop_now(const Metrics& metrics);
  double probe_loss();
  // Checkpoints: see "Checkpoints and resume" in docs/architecture.md.
  struct PendingCheckpoint;
  void write_checkpoint_archives(
      const std::function<void(const char* name, torch::serialize::OutputArchive& archive)>& take) const;
  void maybe_save_checkpoint();
  void save_checkpoint(bool final = false);
  void wait_for_checkpoint();
  void finish_checkpoints();
  // snapshot_seconds: set for a background save (the part of the stall spent on the snapshot).
  void record_checkpoint(std::int64_t step, const std::string& path, double seconds, double stall_seconds,
                         std::optional<double> snapshot_seconds);
  void resume_from_checkpoint();
  void write_summary();

  ResolvedManifest manifest_;
  EngineOptions options_;
  std::unique_ptr<RunDirectory> dir_;
  std::shared_ptr<spdlog::logger> logger_;
  PluginContext context_;

  std::shared_ptr<Backend> backend_;
  std::shared_ptr<Task> task_;
  std::shared_ptr<Optimizer> optimizer_;
  std::shared_ptr<DynamicsModel> dynamics_;
  std::shared_ptr<CorrectionStrategy> correction_;
  std::shared_ptr<PhaseController> phase_;
  std::shared_ptr<Checkpointer> checkpointer_;
  bool background_checkpoints_ = false;              // [checkpointer] background
  std::unique_ptr<PendingCheckpoint> pending_checkpoint_;  // the background save in flight

  std::vector<torch::Tensor> params_;
  ParameterLayout layout_;
  bool predicting_enabled_ = false;
  std::optional<Forecast> pending_forecast_;  // the last phase's forecast, for the next real step

  TrainingState state_;
  RunSummary summary_;
  std::int64_t last_eval_step_ = 0;
  std::int64_t last_checkpoint_step_ = 0;
  double last_checkpoint_seconds_ = 0.0;
  std::optional<double> best_metric_;
  std::int64_t evals_without_improvement_ = 0;
  bool stop_ = false;
  void check_signal();

  // Divergence monitor and the last good state it rolls back to.
  void handle_diagnosis(const Diagnosis& d);
  void take_last_good();
  DivergenceMonitor monitor_;
  std::vector<torch::Tensor> last_good_params_;
  std::string last_good_optimizer_;
  std::int64_t critical_rollbacks_ = 0;
  std::unique_ptr<Progress> progress_;
};

// Groups parameters by module: "features.0.weight" and "features.0.bias" form "features.0".
ParameterLayout make_layout(const torch::nn::Module& model);

}  // namespace hpt::host
