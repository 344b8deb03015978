#include "checkpoint/archive_io.hpp"

#include <sstream>

namespace hpt::host {

std::string archive_bytes(torch::serialize::OutputArchive& archive, std::size_t expected_size) {
  // What save_to(stream) writes, into one string without a stream's extra copy.
  std::string bytes;
  bytes.reserve(expected_size);
  archive.save_to([&](const void* data, std::size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

std::string archive_bytes(const std::function<void(StateWriter&)>& write) {
  torch::serialize::OutputArchive archive;
  StateWriter state(archive, /*copy=*/false);  // serialised right away: nothing to copy
  write(state);
  return archive_bytes(archive);
}

void read_archive(const std::string& bytes, const std::function<void(torch::serialize::InputArchive&)>& read) {
  torch::serialize::InputArchive archive;
  std::istringstream is(bytes);
  archive.load_from(is);
  read(archive);
}

}  // namespace hpt::host
