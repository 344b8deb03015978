// libFuzzer target: the run manifest parser and validator (TOML -> ResolvedManifest),
// resolved against the built plugins. Bad input must end in hpt::BadInput, nothing else.
#include <cstdint>
#include <string>

#include "config/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hpt::host::PluginLoader loader({HPT_PLUGIN_DIR});
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto manifest = hpt::host::Manifest::parse(text, "fuzz.toml");
    auto resolved = hpt::host::resolve(manifest, loader);
    // What it writes back must read back.
    hpt::host::Manifest::parse(resolved.to_toml(), "resolved.toml");
  } catch (const hpt::BadInput&) {
  }
  return 0;
}
