#include "checkpoint/checkpoint_snapshot.hpp"

#include <torch/csrc/jit/serialization/export.h>

namespace hpt::host {

namespace {

// An OutputArchive keeps what was written into it in a private jit::Module, and LibTorch
// offers no way to copy it. This names the private member through the rule that
// explicit template instantiations ignore access; a LibTorch that renames it fails to
// compile here, never silently.
torch::jit::Module& archive_module(torch::serialize::OutputArchive& archive);

template <torch::jit::Module torch::serialize::OutputArchive::*Member>
struct ArchiveModuleAccess {
  friend torch::jit::Module& archive_module(torch::serialize::OutputArchive& archive) { return archive.*Member; }
};
template struct ArchiveModuleAccess<&torch::serialize::OutputArchive::module_>;

}  // namespace

torch::jit::Module frozen_copy(torch::serialize::OutputArchive& archive) { return archive_module(archive).deepcopy(); }

namespace {

// About the size of the serialised archive: its tensors' bytes plus room for the
// pickled structure and the zip headers, so that the output is allocated once rather
// than copied at every doubling (that copying competed with training for memory and CPU).
std::size_t expected_size(const torch::jit::Module& frozen) {
  std::size_t size = std::size_t{1} << 20;
  for (const auto& attribute : frozen.named_attributes(/*recurse=*/true)) {
    const c10::IValue& value = attribute.value;
    if (value.isTensor()) size += value.toTensor().storage().nbytes() + 128;
    else if (value.isTensorList())
      for (const at::Tensor& t : value.toTensorVector()) size += t.defined() ? t.storage().nbytes() + 128 : 0;
  }
  return size;
}

}  // namespace

std::string frozen_bytes(const torch::jit::Module& frozen) {
  // What OutputArchive::save_to does, into one string without a stream's extra copy.
  std::string bytes;
  bytes.reserve(expected_size(frozen));
  torch::jit::ExportModule(frozen, [&](const void* data, std::size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

void FrozenCheckpoint::add_archive(const std::string& name, torch::serialize::OutputArchive& archive) {
  archives_.emplace_back(name, frozen_copy(archive));
}

void FrozenCheckpoint::add_file(CheckpointFile file) { plain_.push_back(std::move(file)); }

std::vector<CheckpointFile> FrozenCheckpoint::files() const {
  std::vector<CheckpointFile> files;
  for (const auto& [name, frozen] : archives_) files.push_back({name, frozen_bytes(frozen)});
  files.insert(files.end(), plain_.begin(), plain_.end());
  return files;
}

}  // namespace hpt::host
