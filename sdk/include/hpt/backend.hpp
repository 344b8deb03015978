// Backend: the device, threads and precision a run uses, and the fused tensor
// operations the engine applies to all parameters at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "hpt/plugin.hpp"

namespace hpt {

// The ranks of a data-parallel run as the host found them (torchrun's environment, or
// `hpt run --nproc`) and the c10d store they meet through.
struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  std::string kind = "auto";  // [distributed] backend: "gloo", "nccl" or "auto" (the backend's choice)
  std::chrono::milliseconds timeout{300000};
  c10::intrusive_ptr<c10d::Store> store;
};

// A collective in flight. wait() blocks until it is done; it throws hpt::RunError when
// the collective failed or timed out (a rank died or hangs).
class PendingCollective {
 public:
  virtual ~PendingCollective();
  virtual void wait() = 0;
};

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

  // averages[i] = decay * averages[i] + (1 - decay) * tensors[i], in place, without
  // autograd: an exponential moving average of the weights. The default uses LibTorch's
  // multi-tensor (_foreach) ops; a GPU backend may fuse it into one kernel.
  virtual void update_average(const std::vector<torch::Tensor>& averages, const std::vector<torch::Tensor>& tensors,
                              double decay);
  // Memory in use on device(); the engine logs it with every evaluation and in
  // summary.json, and checks [backend] memory_budget against total.
  virtual MemoryUse memory_use() const { return {}; }

  // Data parallelism. The host calls join() once, right after creating the backend and
  // before any other plugin exists, when the run has more than one rank; the collectives
  // below then act across the ranks (on one rank they do nothing). The defaults build a
  // c10d ProcessGroupGloo over world.store (kind "gloo" or "auto"), which handles CPU
  // tensors; a GPU backend overrides them for NCCL. Throws hpt::BadInput for a kind the
  // backend does not have.
  virtual void join(const World& world);
  // Sums every tensor over the ranks, in place; the tensors must stay alive and untouched
  // until wait() returns.
  virtual std::unique_ptr<PendingCollective> all_reduce_async(const std::vector<torch::Tensor>& tensors);
  void all_reduce(const std::vector<torch::Tensor>& tensors) { all_reduce_async(tensors)->wait(); }
  // Copies `root`'s tensors into every other rank's, in place.
  virtual void broadcast(const std::vector<torch::Tensor>& tensors, int root);
  // Returns when every rank has called it.
  virtual void barrier();
  // The world joined (size 1 before join()).
  const World& world() const { return world_; }

 protected:
  World world_;

 private:
  struct Group;  // the c10d process group of the default collectives (sdk/src/backend.cpp)
  std::shared_ptr<Group> group_;
};

}  // namespace hpt
