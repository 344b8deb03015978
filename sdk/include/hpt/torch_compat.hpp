// What differs between the LibTorch versions hpt builds against (Debian's 1.13 and 2.x),
// behind one name each, on public APIs only.
#pragma once

#include <cstdint>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "hpt/version.hpp"

namespace hpt {

// Zero-fills the gradients of `optimizer`'s parameters. LibTorch 1.13's zero_grad() takes
// no argument and zero-fills; 2.x's defaults to set_to_none = true. Same result on both.
inline void zero_grad(torch::optim::Optimizer& optimizer) {
#if HPT_TORCH_AT_LEAST(2, 0)
  optimizer.zero_grad(/*set_to_none=*/false);
#else
  optimizer.zero_grad();
#endif
}

// A new CPU generator seeded with `seed` (not the global one).
inline at::Generator make_cpu_generator(std::uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// The global CPU generator torch::manual_seed seeds (a handle sharing it).
inline at::Generator default_cpu_generator() { return at::globalContext().defaultGenerator(c10::DeviceType::CPU); }

}  // namespace hpt
