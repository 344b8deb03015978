// Optimizer: turns gradients into parameter updates, owns its state, and reports the
// update it applied so dynamics models can learn from it.
#pragma once

#include <functional>
#include <vector>

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

// Zeroes the gradients, runs forward and backward, and returns the loss. The engine
// builds it; an optimizer may call it more than once per step (L-BFGS does).
using Closure = std::function<torch::Tensor()>;

class Optimizer : public Plugin {
 public:
  ~Optimizer() override;

  // Binds the optimizer to the parameters it updates. Called once, before any step.
  // With `track_updates`, every step records the update it applied (last_update());
  // without, last_update() may stay empty and the step costs nothing extra.
  virtual void bind(const std::vector<torch::Tensor>& parameters, bool track_updates) = 0;

  // One optimisation step at step-equivalent `step` (1-based; schedules read it):
  // calls `closure`, clips the gradients if configured, updates the parameters.
  // Returns the loss of the first closure call.
  virtual torch::Tensor step(const Closure& closure, std::int64_t step) = 0;

  // Per parameter, the update the last step applied (after minus before), as device
  // tensors owned by the optimizer, valid until the next step.
  virtual const std::vector<torch::Tensor>& last_update() const = 0;

  // Global L2 norm of the gradients in the last step, before clipping.
  virtual double last_grad_norm() const = 0;

  // The learning rate the last step used (after the schedule).
  virtual double learning_rate() const = 0;

  // Scales the base learning rate (the divergence monitor cuts it after a roll-back).
  virtual void scale_learning_rate(double factor) = 0;

  // Bytes of state the optimizer will hold for `parameters` once it has stepped (Adam's
  // two moments: twice their size). The engine adds it to the memory plan it checks
  // before the first step ([backend] memory_budget). The default assumes two moments.
  virtual std::int64_t planned_state_bytes(const std::vector<torch::Tensor>& parameters) const;

  // Told every evaluation, for schedules that follow a metric (reduce-on-plateau).
  virtual void on_evaluation(const Metrics& metrics) { (void)metrics; }
};

}  // namespace hpt
