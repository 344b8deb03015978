// An optimizer's saved state as bytes and back, as a checkpoint stores it (the tests of
// optimizer plugins: resume = load what save wrote into a freshly bound optimizer).
#pragma once

#include <sstream>
#include <string>

#include <torch/serialize/archive.h>

#include "hpt/optimizer.hpp"
#include "hpt/state_writer.hpp"

namespace hpt::test {

inline std::string save_bytes(const hpt::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  hpt::StateWriter state(archive, /*copy=*/true);
  optimizer.save(state);
  std::ostringstream os;
  archive.save_to(os);
  return os.str();
}

inline void load_bytes(hpt::Optimizer& optimizer, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream is(bytes);
  archive.load_from(is);
  optimizer.load(archive);
}

}  // namespace hpt::test
