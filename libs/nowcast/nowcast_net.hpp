// The nowcaster: from the last few windows of a training trajectory, predict where the
// weights will be far ahead (Knyazev et al., "Accelerating Training with Neuron
// Interaction and Nowcasting Networks", ICLR 2025; this is their per-parameter baseline's
// shape, WNN+, not the graph network).
//
// A window is `window` real steps; its delta is the weights' change over it. For every
// scalar weight the net reads its last `context` window deltas, each divided by the
// tensor's scale (the RMS of those deltas over the whole tensor, so one net serves every
// layer and learning rate), newest first, plus what kind of tensor it is, and predicts the
// change over the next `ahead` windows in the same units. Trained by tools/nowcast_train
// on trajectories that `run.record_trajectory` wrote; loaded by the `nowcast` dynamics
// plugin.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace hpt::nowcast {

struct NowcastShape {
  std::int64_t context = 4;  // window deltas read (context + 1 snapshots)
  std::int64_t ahead = 5;    // windows predicted ahead
  std::int64_t window = 200; // real steps per window in the trajectories it learned from
  std::int64_t hidden = 32;  // width of the two hidden layers
};

// Kinds of tensor, one-hot in the features: 1-D (biases, norm weights), 2-D (linear),
// more (convolutions).
constexpr std::int64_t kTensorKinds = 3;
std::int64_t tensor_kind(const torch::Tensor& t);

class NowcastNetImpl : public torch::nn::Module {
 public:
  explicit NowcastNetImpl(const NowcastShape& shape);
  // features [N, context + kTensorKinds] -> predicted change over `ahead` windows, [N], in scale units.
  torch::Tensor forward(const torch::Tensor& features);
  const NowcastShape& shape() const { return shape_; }

 private:
  NowcastShape shape_;
  torch::nn::Linear in_{nullptr}, mid_{nullptr}, out_{nullptr};
};
TORCH_MODULE(NowcastNet);

// The features of every element of one tensor and its scale: `deltas` are the tensor's
// last `context` window deltas, oldest first, all of its shape. Returns [numel, context +
// kTensorKinds] (float32, on the deltas' device) and sets `scale` (0 when the tensor did
// not move: its features are then all 0 but the kind).
torch::Tensor features_of(const std::vector<torch::Tensor>& deltas, double& scale);

// Predicted change of one tensor over `ahead` windows, in its own units and shape.
torch::Tensor predict_change(NowcastNet& net, const std::vector<torch::Tensor>& deltas);

// The model file: the shape and the net's parameters in one torch::serialize archive.
// load_nowcaster throws hpt::BadInput naming `path` when it is missing or not one.
void save_nowcaster(NowcastNet& net, const std::string& path);
NowcastNet load_nowcaster(const std::string& path);

}  // namespace hpt::nowcast
