// libFuzzer target: a checkpoint's manifest.json. Bad input must end in hpt::BadInput.
#include <cstdint>
#include <string>

#include "checkpoint_format/checkpoint_manifest.hpp"
#include "hpt/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto manifest = hpt::checkpoint::parse_manifest(text, "fuzz");
    hpt::checkpoint::parse_manifest(hpt::checkpoint::manifest_to_json(manifest), "fuzz");  // round trip
  } catch (const hpt::BadInput&) {
  }
  return 0;
}
