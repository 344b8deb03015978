// Task: owns the model, the data, the loss and evaluation.
//
// Contract. The host creates the task first (after the backend) and calls, on the
// training thread only: model() to list the parameters, then per real step next_batch()
// and loss() with grad mode on (the engine calls backward), probe_batch() during
// predicted phases under inference mode, evaluate() every run.eval_every steps and at
// the end of the run, under torch::NoGradGuard. The
// host puts the model in train() mode for steps and eval() mode for evaluate() and
// restores it after. save() runs between steps (hpt/state_writer.hpp); load() runs once
// on resume, after construction, and must restore the data position so that the resumed
// run sees the batches it would have seen.
//
// Built with context.inference_only (`hpt sample`), the task need not read any data:
// the host calls load() with the checkpoint's task state, then model(), then sample().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "hpt/plugin.hpp"
#include "hpt/types.hpp"

namespace hpt {

// What `hpt sample` asks of a task that generates sequences (char_lm: text).
struct SampleRequest {
  std::string prompt;          // the start of the text; "" lets the task choose
  std::int64_t length = 200;   // tokens to generate after the prompt
  double temperature = 1.0;    // > 0; logits are divided by it before sampling
  std::uint64_t seed = 0;      // the sampling stream: one seed, one text
};

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

  // Generation, for tasks that model sequences: the prompt followed by `length`
  // generated tokens, decoded. The model's weights are the ones to sample from; runs
  // under inference mode. The default throws hpt::BadInput ("task X does not generate").
  virtual bool can_sample() const { return false; }
  virtual std::string sample(const SampleRequest& request);

  // Curriculum ([curriculum] in the manifest), for tasks that can score their training
  // examples. score_examples(): one difficulty per training example of this rank's data
  // (a 1-D CPU float tensor, higher is harder; e.g. the current model's loss on it),
  // called under torch::NoGradGuard with the model in eval() mode. restrict_examples():
  // from the next batch on, next_batch() draws only from these examples (1-D int64
  // indices into that same list, in any order); an undefined tensor lifts the
  // restriction. The restriction is part of the task's saved state. The defaults throw
  // hpt::BadInput ("task X cannot score its examples").
  virtual bool can_score_examples() const { return false; }
  virtual torch::Tensor score_examples();
  virtual void restrict_examples(const torch::Tensor& examples);
};

}  // namespace hpt
