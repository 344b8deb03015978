// Task: owns the model, the data, the loss and evaluation.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

// A batch on the task's device. `inputs` are what the model takes, `targets` what the
// loss compares with.
struct Batch {
  std::vector<torch::Tensor> inputs;
  torch::Tensor targets;
};

class Task : public Plugin {
 public:
  ~Task() override;

  // The model being trained. Its parameters() are what the optimizer updates and the
  // dynamics model forecasts; the task keeps it alive for its own lifetime.
  virtual torch::nn::Module& model() = 0;

  // The next training batch. Consumes data: the data order and position are part of
  // the task's saved state, so a resumed run sees the same batches.
  virtual Batch next_batch() = 0;

  // Forward pass and mean loss of `batch`, a scalar that autograd can differentiate.
  virtual torch::Tensor loss(const Batch& batch) = 0;

  // A batch that stays the same for the whole run; predicted phases measure the loss
  // on it (under inference mode) to check the forecast.
  virtual const Batch& probe_batch() = 0;

  // Validation on held-out data, e.g. {"val_loss", "val_accuracy"}. The engine times
  // it apart from training.
  virtual Metrics evaluate() = 0;

  // The metric names evaluate() returns, for validating run.target and run.early_stop.
  virtual std::vector<std::string> metric_names() const = 0;

  // True when every batch is the whole training set (what L-BFGS needs).
  virtual bool full_batch() const { return false; }
};

}  // namespace hpt
