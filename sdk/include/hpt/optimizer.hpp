// Optimizer: turns gradients into parameter updates, owns its state, and reports the
// update it applied so dynamics models can learn from it.
//
// Contract, in call order: construction (options validated by the host),
// set_parameter_groups() when the manifest declares [[param_groups]], bind() once,
// then load() when resuming (so load() can rely on the state bind() built), then step()
// for every real step, on the training thread. step() is called with grad mode on: the
// closure needs it for backward, and the optimizer changes the parameters under
// torch::NoGradGuard. The engine never changes the parameters during a step; between
// steps it may (predicted phases, roll-backs), so an optimizer must not cache copies of
// the parameters across steps.
//
// Building blocks outside hpt::TorchOptimizer: hpt::LrSchedule (hpt/lr_schedule.hpp)
// gives the schedule factor of a step and its saved state; hpt/gradient_clipping.hpp has
// the global norm, norm clipping, adaptive clipping and centralisation, each usable on
// any parameter list. State: write tensors with StateWriter::write in save(), read them
// back with hpt::read_tensor (hpt/archive.hpp) in load(). See docs/writing-plugins.md for
// a complete optimizer written against this header alone.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

// Zeroes the gradients, runs forward and backward, and returns the loss. The engine
// builds it; an optimizer may call it more than once per step (L-BFGS does).
using Closure = std::function<torch::Tensor()>;

// One of the manifest's [[param_groups]], as a torch.optim param group: the parameters
// it holds (indices into the list bind() receives, each in at most one group), a
// multiplier of the learning rate, and a weight decay that replaces the optimizer's own
// when set. Parameters in no group keep the optimizer's options.
struct ParameterGroup {
  std::string name;
  std::vector<std::size_t> parameters;
  double lr_scale = 1.0;
  std::optional<double> weight_decay;
};

class Optimizer : public Plugin {
 public:
  ~Optimizer() override;

  // Binds the optimizer to the parameters it updates. Called once, before any step.
  // With `track_updates`, every step records the update it applied (last_update());
  // without, last_update() may stay empty and the step costs nothing extra.
  virtual void bind(const std::vector<torch::Tensor>& parameters, bool track_updates) = 0;

  // The manifest's parameter groups, before bind(); never called without groups. The
  // update of every parameter still goes to last_update(), in bind()'s order. The
  // default throws hpt::BadInput: an optimizer takes groups only where it says how
  // (hpt::TorchOptimizer does, for the torch optimizers with a weight_decay option).
  virtual void set_parameter_groups(const std::vector<ParameterGroup>& groups);

  // One optimisation step at step-equivalent `step` (1-based; schedules read it):
  // calls `closure`, clips the gradients if configured, updates the parameters.
  // Returns the loss of the first closure call.
  virtual torch::Tensor step(const Closure& closure, std::int64_t step) = 0;

  // Per parameter, the update the last step applied (after minus before), as device
  // tensors owned by the optimizer, valid until the next step. Read only when bind()
  // had track_updates; otherwise it may be empty. Before the first step: zeros or empty.
  virtual const std::vector<torch::Tensor>& last_update() const = 0;

  // Global L2 norm of the gradients in the last step, before clipping.
  virtual double last_grad_norm() const = 0;

  // The learning rate the last step used (after the schedule). Before the first step:
  // the rate step 1 will use.
  virtual double learning_rate() const = 0;

  // Multiplies the base learning rate by `factor` (> 0), cumulatively: two calls with
  // 0.5 leave a quarter. The divergence monitor cuts it after a roll-back; the scale is
  // part of the saved state.
  virtual void scale_learning_rate(double factor) = 0;

  // Bytes of state the optimizer will hold for `parameters` once it has stepped (Adam's
  // two moments: twice their size). The engine adds it to the memory plan it checks
  // before the first step ([backend] memory_budget). The default assumes two moments.
  virtual std::int64_t planned_state_bytes(const std::vector<torch::Tensor>& parameters) const;

  // Told every evaluation, for schedules that follow a metric (reduce-on-plateau).
  virtual void on_evaluation(const Metrics& metrics) { (void)metrics; }

  // Called with true right before the engine evaluates, saves final weights or exports,
  // and with false right after: an optimizer whose training point is not the point to
  // evaluate (Schedule-Free: gradients at y, evaluation at x) swaps the parameters in
  // place and back. Under no-grad, between steps, on the training thread. Default: nothing.
  virtual void use_evaluation_weights(bool on) { (void)on; }
};

}  // namespace hpt
