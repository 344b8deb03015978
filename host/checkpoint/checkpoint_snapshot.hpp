// Frozen copies of LibTorch archives, for checkpoints saved in the background: the
// training thread lets every plugin write its archive (cheap: the archive refers to the
// live tensors) and freezes it (clones every tensor); another thread then serialises the
// frozen copy while training goes on changing the live tensors.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/serialize/output-archive.h>

#include "hpt/checkpointer.hpp"

namespace hpt::host {

// A deep copy of what `archive` holds: every value copied, every tensor cloned (aliases
// kept), so that later changes to the tensors written into `archive` do not reach it.
torch::jit::Module frozen_copy(torch::serialize::OutputArchive& archive);

// The bytes archive.save_to() writes, for the frozen copy of an archive. Safe on any
// thread: it reads only the copy.
std::string frozen_bytes(const torch::jit::Module& frozen);

// A whole checkpoint frozen in memory: every archive a deep copy, taken on the training
// thread; files() (any thread, later) serialises them. What a background save writes.
class FrozenCheckpoint {
 public:
  // Freezes `archive` (frozen_copy) under `name`.
  void add_archive(const std::string& name, torch::serialize::OutputArchive& archive);
  // A file kept as it is (text such as the resolved manifest); written after the archives.
  void add_file(CheckpointFile file);
  // The checkpoint's files: each archive's bytes (as save_to() would write them), then the plain files.
  std::vector<CheckpointFile> files() const;

 private:
  std::vector<std::pair<std::string, torch::jit::Module>> archives_;
  std::vector<CheckpointFile> plain_;
};

}  // namespace hpt::host
