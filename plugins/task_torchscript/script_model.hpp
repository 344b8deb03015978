// A TorchScript module (torch::jit::Module) seen as a torch::nn::Module, so the engine,
// the optimizers and the dynamics models can treat it like any other model.
#pragma once

#include <torch/nn/module.h>
#include <torch/script.h>

namespace hpt::torchscript {

// Registers every parameter and buffer of the script module (recursively) as its own,
// under the script module's name with '.' replaced by '_' ("fc1.weight" -> "fc1_weight"):
// the very same tensors, so an optimizer step on parameters() changes the script
// module's weights. forward() and train()/eval() go to the script module. The script
// module keeps its parameters as they are in its file (its own initialisation).
class ScriptModelImpl : public torch::nn::Module {
 public:
  // Throws hpt::BadInput when two names collide once their dots are replaced.
  explicit ScriptModelImpl(torch::jit::Module module);

  // The script module's forward(x); throws hpt::RunError when it returns no tensor.
  torch::Tensor forward(const torch::Tensor& x);

  void train(bool on = true) override;

 private:
  torch::jit::Module module_;
};
TORCH_MODULE(ScriptModel);

}  // namespace hpt::torchscript
