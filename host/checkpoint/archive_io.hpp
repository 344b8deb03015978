// LibTorch archives to and from bytes in memory: what a checkpoint file and an
// in-memory snapshot of a plugin's state are made of.
#pragma once

#include <functional>
#include <string>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "hpt/state_writer.hpp"

namespace hpt::host {

// The bytes archive.save_to() writes.
// The archive's bytes, as save_to() writes them; `expected_size` reserves room up front
// (a big archive is then not copied at every doubling).
std::string archive_bytes(torch::serialize::OutputArchive& archive, std::size_t expected_size = 0);
// The bytes of a new archive that `write` fills.
// What `write` writes through a StateWriter that copies nothing, serialised at once.
std::string archive_bytes(const std::function<void(StateWriter&)>& write);
// Loads `bytes` as an archive and hands it to `read`.
void read_archive(const std::string& bytes, const std::function<void(torch::serialize::InputArchive&)>& read);

}  // namespace hpt::host
