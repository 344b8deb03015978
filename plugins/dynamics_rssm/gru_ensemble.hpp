// GruEnsemble: `members` independent recurrent models, each a torch::nn::GRUCell over the
// state features and a linear head that reads its hidden state and predicts the change
// of the dynamic features at the next real step. Members differ only in their initial
// weights; their disagreement is the ensemble's spread.
//
// The cells and heads own the parameters (their names, initialisation and checkpoints);
// the forward pass runs all members at once with the GRUCell's equations over their
// stacked weights (a few batched matrix products instead of a dozen small operations per
// member), which is what keeps observe(), forecast() and training cheap.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/pimpl.h>

namespace hpt::rssm {

// Every member's weights stacked along a leading member dimension, transposed for
// batched products. Built from the parameters, so gradients flow back to them.
struct StackedWeights {
  torch::Tensor input;         // [members, inputs, 3 * hidden]  (GRU gates r, z, n)
  torch::Tensor input_bias;    // [members, 1, 3 * hidden]
  torch::Tensor hidden;        // [members, hidden, 3 * hidden]
  torch::Tensor hidden_bias;   // [members, 1, 3 * hidden]
  torch::Tensor head;          // [members, hidden, outputs]
  torch::Tensor head_bias;     // [members, 1, outputs]
};

class GruEnsembleImpl : public torch::nn::Module {
 public:
  // `inputs` features in, `outputs` predicted feature changes out. The heads start at a
  // tenth of torch's default initialisation, so early forecasts stay close to "no change".
  GruEnsembleImpl(std::int64_t members, std::int64_t inputs, std::int64_t hidden, std::int64_t outputs);

  torch::nn::GRUCell cell(std::size_t member) const { return cells_[member]; }
  torch::nn::Linear head(std::size_t member) const { return heads_[member]; }

  // The current parameters, stacked (differentiable when grad mode is on).
  StackedWeights stacked() const;

  // One recurrent step of every member, GRUCell::forward for each. inputs: [batch, inputs]
  // shared by all members, or [members, batch, inputs]; hidden: [members, batch, hidden].
  // Returns the next hidden state, [members, batch, hidden].
  static torch::Tensor step(const StackedWeights& w, const torch::Tensor& inputs, const torch::Tensor& hidden);

  // Each member's predicted change of the dynamic features: [members, batch, outputs].
  static torch::Tensor predict(const StackedWeights& w, const torch::Tensor& hidden);

 private:
  std::vector<torch::nn::GRUCell> cells_;
  std::vector<torch::nn::Linear> heads_;
};

TORCH_MODULE(GruEnsemble);

}  // namespace hpt::rssm
