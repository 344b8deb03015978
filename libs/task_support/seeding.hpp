// Seeds for a task's independent random streams (data generation, data order, model
// initialisation), all derived from the run seed.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace hpt::task_support {

// A seed for stream `stream` of run seed `seed` (SplitMix64 of both): different streams
// of one run, and the same stream of different runs, get unrelated seeds.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream);

// While alive, LibTorch's default CPU generator is seeded with `seed`; on destruction
// it gets back the state it had. Build a model inside one so that its initial weights
// depend only on `seed` and the run's own random stream is left as it was.
class ScopedTorchSeed {
 public:
  explicit ScopedTorchSeed(std::uint64_t seed);
  ~ScopedTorchSeed();
  ScopedTorchSeed(const ScopedTorchSeed&) = delete;
  ScopedTorchSeed& operator=(const ScopedTorchSeed&) = delete;

 private:
  torch::Tensor saved_state_;
};

}  // namespace hpt::task_support
