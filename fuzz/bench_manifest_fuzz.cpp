// libFuzzer target: the bench manifest parser and validator. Bad input must end in
// hpt::BadInput, nothing else.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "bench/bench_manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/tmp/hpt_bench_fuzz." + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    hpt::host::load_bench_manifest(path);
  } catch (const hpt::BadInput&) {
  }
  return 0;
}
