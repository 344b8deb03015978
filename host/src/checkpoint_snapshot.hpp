// Frozen copies of LibTorch archives, for checkpoints saved in the background: the
// training thread lets every plugin write its archive (cheap: the archive refers to the
// live tensors) and freezes it (clones every tensor); another thread then serialises the
// frozen copy while training goes on changing the live tensors.
#pragma once

#include <string>

#include <torch/serialize/output-archive.h>

namespace hpt::host {

// A deep copy of what `archive` holds: every value copied, every tensor cloned (aliases
// kept), so that later changes to the tensors written into `archive` do not reach it.
torch::jit::Module frozen_copy(torch::serialize::OutputArchive& archive);

// The bytes archive.save_to() writes, for the frozen copy of an archive. Safe on any
// thread: it reads only the copy.
std::string frozen_bytes(const torch::jit::Module& frozen);

}  // namespace hpt::host
