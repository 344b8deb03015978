// Backend: the device, threads and precision a run uses, and the fused tensor
// operations the engine applies to all parameters at once.
#pragma once

#include <vector>

#include "hpt/plugin.hpp"

namespace hpt {

// Device memory as the backend's allocator sees it, in bytes; -1 where a backend cannot
// tell (the CPU backend knows only the machine's total).
struct MemoryUse {
  std::int64_t allocated = -1;  // held by tensors now
  std::int64_t peak = -1;       // the most held at once since the run started
  std::int64_t total = -1;      // the device's capacity
};

// Threading: the engine calls a backend from its training thread only. save() may run
// on that thread while a background checkpoint writes what an earlier save() returned.
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

  // Memory in use on device(); the engine logs it with every evaluation and in
  // summary.json, and checks [backend] memory_budget against total.
  virtual MemoryUse memory_use() const { return {}; }
};

}  // namespace hpt
