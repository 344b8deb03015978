// A checkpoint frozen on the training thread and serialised later, on the background
// save's thread: each state file is an OutputArchive filled through a copying
// StateWriter, so it holds copies that training no longer touches.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/serialize/output-archive.h>

#include "hpt/checkpointer.hpp"
#include "hpt/state_writer.hpp"

namespace hpt::host {

class FrozenCheckpoint {
 public:
  // Runs `write` with a copying StateWriter and keeps the archive under `name`.
  void add_archive(const std::string& name, const std::function<void(StateWriter&)>& write);
  // A file kept as it is (text such as the resolved manifest); written after the archives.
  void add_file(CheckpointFile file);
  // The checkpoint's files: each archive's bytes (as save_to() writes them), then the
  // plain files. Call once, on any thread.
  std::vector<CheckpointFile> files();

 private:
  struct Archive {
    std::string name;
    torch::serialize::OutputArchive archive;
    std::int64_t copied_bytes = 0;  // a size hint for the serialised bytes
  };
  std::vector<Archive> archives_;
  std::vector<CheckpointFile> plain_;
};

}  // namespace hpt::host
