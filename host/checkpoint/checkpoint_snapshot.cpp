#include "checkpoint/checkpoint_snapshot.hpp"

#include "checkpoint/archive_io.hpp"

namespace hpt::host {

void FrozenCheckpoint::add_archive(const std::string& name, const std::function<void(StateWriter&)>& write) {
  Archive frozen{name, torch::serialize::OutputArchive(), 0};
  StateWriter state(frozen.archive, /*copy=*/true);
  write(state);
  frozen.copied_bytes = state.copied_bytes();
  archives_.push_back(std::move(frozen));
}

void FrozenCheckpoint::add_file(CheckpointFile file) { plain_.push_back(std::move(file)); }

std::vector<CheckpointFile> FrozenCheckpoint::files() {
  std::vector<CheckpointFile> files;
  for (Archive& frozen : archives_) {
    // About the final size: the tensors' bytes plus room for the pickled structure and
    // the zip headers.
    const auto expected = static_cast<std::size_t>(frozen.copied_bytes) + (std::size_t{1} << 20);
    files.push_back({frozen.name, archive_bytes(frozen.archive, expected)});
  }
  files.insert(files.end(), plain_.begin(), plain_.end());
  return files;
}

}  // namespace hpt::host
