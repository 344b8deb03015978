#include "checkpoint/archive_io.hpp"

#include <sstream>

namespace hpt::host {

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
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
