#include "task_support/seeding.hpp"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>

namespace hpt::task_support {

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

ScopedTorchSeed::ScopedTorchSeed(std::uint64_t seed) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  saved_state_ = generator.get_state();
  generator.set_current_seed(seed);
}

ScopedTorchSeed::~ScopedTorchSeed() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(saved_state_);
}

}  // namespace hpt::task_support
