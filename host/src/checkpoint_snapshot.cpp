#include "checkpoint_snapshot.hpp"

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

std::string frozen_bytes(const torch::jit::Module& frozen) {
  // What OutputArchive::save_to does, into one string without a stream's extra copy.
  std::string bytes;
  torch::jit::ExportModule(frozen, [&](const void* data, std::size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

}  // namespace hpt::host
