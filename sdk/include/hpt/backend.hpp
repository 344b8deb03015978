// Backend: the device, threads and precision a run uses, and the fused tensor
// operations the engine applies to all parameters at once.
#pragma once

#include <vector>

#include "hpt/plugin.hpp"

namespace hpt {

class Backend : public Plugin {
 public:
  ~Backend() override;

  // Where tasks put their model and data.
  virtual torch::Device device() const = 0;

  // Waits until every queued operation on the device is done (for honest timing).
  virtual void synchronize() = 0;

  // params[i] += scales[i] * updates[i] for every i, in place, without autograd and
  // without host copies. The engine's predicted step.
  virtual void add_scaled(const std::vector<torch::Tensor>& params,
                          const std::vector<torch::Tensor>& updates,
                          const std::vector<double>& scales) = 0;

  // The L2 norm of each tensor, as a 1-d tensor of tensors.size() values on the device.
  virtual torch::Tensor norms(const std::vector<torch::Tensor>& tensors) = 0;

  // A copy of `tensors` (parameters, optimizer state) to restore later.
  virtual std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& tensors) = 0;

  // Copies `snapshot` back into `tensors`, in place, bit for bit.
  virtual void restore(const std::vector<torch::Tensor>& tensors,
                       const std::vector<torch::Tensor>& snapshot) = 0;
};

}  // namespace hpt
