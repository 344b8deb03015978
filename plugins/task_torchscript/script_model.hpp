// A TorchScript module (torch::jit::Module) seen as a torch::nn::Module, so the engine,
// the optimizers and the dynamics models can treat it like any other model.
#pragma once

#include <torch/nn/module.h>
#include <torch/script.h>

namespace hpt::torchscript {

// Registers every parameter and buffer of the script module (recursively) under the
// script module's own name: "encoder.0.weight" is parameter "weight" of an empty holder
// module "0" inside an empty holder module "encoder", mirroring the script module's
// hierarchy, so named_parameters(), named_buffers(), checkpoints, `hpt export` and
// final_weights.pt use the names PyTorch's state_dict() uses and load_state_dict()
// accepts. They are the very same tensors, so an optimizer step on parameters() changes
// the script module's weights. forward() and train()/eval() go to the script module. The
// script module keeps its parameters as they are in its file (its own initialisation).
class ScriptModelImpl : public torch::nn::Module {
 public:
  explicit ScriptModelImpl(torch::jit::Module module);

  // The script module's forward(x); throws hpt::RunError when it returns no tensor.
  torch::Tensor forward(const torch::Tensor& x);

  void train(bool on = true) override;

 private:
  torch::jit::Module module_;
};
TORCH_MODULE(ScriptModel);

}  // namespace hpt::torchscript
