// Plain types the engine and the plugins exchange.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

namespace hpt {

// Named figures such as {"val_loss": 0.41, "val_accuracy": 0.88}.
using Metrics = std::map<std::string, double>;

// What kind of step a record describes. Every step of a run is one of these.
enum class StepKind {
  Full,       // batch -> forward -> loss -> backward -> optimizer step
  Predicted,  // the dynamics model's forecast update applied; no forward, no backward
  Probe,      // loss on the fixed probe batch during a predicted phase (inference only)
  Correct,    // a real step right after a predicted phase, compared with the forecast
};
const char* to_string(StepKind kind);

// The parameters the optimizer updates, grouped the way dynamics models forecast them.
// Group g holds the parameters parameter_groups[g] (indices into `names`/`shapes`).
// The engine groups by module: "conv1.weight" and "conv1.bias" form the group "conv1".
struct ParameterLayout {
  std::vector<std::string> names;                 // one per parameter tensor
  std::vector<std::vector<std::int64_t>> shapes;  // one per parameter tensor
  std::vector<std::string> group_names;           // one per group
  std::vector<std::vector<std::size_t>> groups;   // parameter indices of each group
  std::vector<std::size_t> group_of;              // group index of each parameter

  // Elements of all parameters together.
  std::int64_t elements() const {
    std::int64_t total = 0;
    for (const auto& shape : shapes) {
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      total += n;
    }
    return total;
  }
};

// One real or predicted step, as the engine saw it. Tensors are device tensors owned
// by the engine; they stay valid only during the call that receives the record.
struct StepRecord {
  std::int64_t step = 0;              // step-equivalent index (real + predicted), from 1
  StepKind kind = StepKind::Full;
  double loss = 0.0;                  // training loss of the batch (probe loss for Probe)
  double grad_norm = 0.0;             // global L2 norm of the gradient before clipping
  double learning_rate = 0.0;
  double seconds = 0.0;               // wall time of the step, device synchronised
  int forward_passes = 0;
  int backward_passes = 0;
  bool skipped = false;               // fp16: inf/NaN gradients, the loss scale backed off, no update
  std::vector<torch::Tensor> update;  // per parameter: value after the step minus before
  std::vector<double> group_update_norms;  // L2 norm of `update` over each group
};

// A dynamics model's forecast for the next `horizon` step-equivalents.
// Predicted step i (0-based) adds scale[i][g] * direction[p] to every parameter p of group g;
// the first one also adds offset[p], when the forecast has one.
struct Forecast {
  std::vector<torch::Tensor> direction;    // per parameter, same shape and device
  // Empty, or per parameter: where the phase starts from, relative to the weights now
  // (e.g. a point of the trajectory with the step-to-step noise averaged out). Added once,
  // with the first predicted step; not scaled by the correction strategy.
  std::vector<torch::Tensor> offset;
  std::vector<std::vector<double>> scale;  // [horizon][group]
  std::vector<double> loss;                // expected training loss after each predicted step
  std::vector<double> loss_low;            // lower bound of the loss after each step
  std::vector<double> loss_high;           // upper bound
  double confidence = 0.0;                 // in [0, 1]; 0 means "do not predict"

  std::int64_t horizon() const { return static_cast<std::int64_t>(scale.size()); }
};

// What the phase controller asks the engine to do next.
enum class PhaseKind { Full, Predict, Correct };
const char* to_string(PhaseKind kind);

struct PhaseDecision {
  PhaseKind kind = PhaseKind::Full;
  std::int64_t length = 1;  // steps (Full, Correct) or predicted steps (Predict)
};

// How a predicted phase ended, reported back to the phase controller.
struct PhaseOutcome {
  std::int64_t planned = 0;      // predicted steps asked for
  std::int64_t applied = 0;      // predicted steps that were kept
  bool rolled_back = false;
  double loss_before = 0.0;      // probe loss before the phase
  double loss_after = 0.0;       // probe loss at the end (before any roll-back)
  double seconds = 0.0;          // wall time of the phase, probes included
};

// A read-only view of the training state for phase controllers and monitors.
struct TrainingState {
  std::int64_t step = 0;             // step-equivalents so far
  std::int64_t max_steps = 0;
  std::int64_t real_steps = 0;       // Full + Correct steps
  std::int64_t predicted_steps = 0;  // predicted steps kept
  std::int64_t steps_since_phase = 0;  // real steps since the last predicted phase ended
  std::int64_t rollbacks = 0;
  double last_loss = 0.0;
  double loss_ema = 0.0;             // exponential moving average of the training loss
  double confidence = 0.0;           // DynamicsModel::confidence() after the last real step
  double seconds = 0.0;              // training wall time so far, evaluation excluded
};

// What the correction strategy says after a probe during a predicted phase.
enum class Verdict { Continue, Stop, Rollback };
const char* to_string(Verdict verdict);

}  // namespace hpt
