// GradientSync: data-parallel gradient averaging the way PyTorch's DDP does it. The
// parameters' gradients are packed into buckets of about bucket_bytes, in reverse order
// of the parameters (about the order backward produces them); each bucket's all-reduce
// starts, through the Backend, as soon as backward has delivered its last gradient
// (autograd hooks on the parameters), while backward goes on with the others. finish()
// waits for them all and leaves every rank's .grad at the mean over the ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hpt/backend.hpp"

namespace hpt::host {

class GradientSync {
 public:
  GradientSync(Backend& backend, const std::vector<torch::Tensor>& parameters, std::int64_t bucket_bytes);
  ~GradientSync();  // removes the hooks
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  void begin();   // before a backward pass
  void finish();  // after it: every bucket reduced, averaged, written to .grad

  std::size_t buckets() const { return buckets_.size(); }
  // Seconds finish() has spent waiting for all-reduces so far: the communication the
  // backward pass did not hide.
  double wait_seconds() const { return wait_seconds_; }
  std::int64_t bytes_per_step() const;  // gradient bytes each rank sends into the all-reduce

 private:
  struct Slot {
    std::size_t bucket;
    std::size_t entry;  // index into the bucket's `parameters`
    std::int64_t offset, numel;
  };
  struct Bucket {
    torch::Tensor buffer;                  // flat, the parameters' dtype and device
    std::vector<std::size_t> parameters;   // indices into parameters_
    std::size_t ready = 0;
    std::vector<bool> arrived;             // per entry of `parameters`
    std::unique_ptr<PendingCollective> pending;
  };
  void arrived(std::size_t parameter, const torch::Tensor& grad);
  void launch(Bucket& bucket);

  Backend& backend_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<unsigned> hooks_;
  double wait_seconds_ = 0.0;
};

}  // namespace hpt::host
