// libFuzzer target: the checkpoint load path's model.pt (a LibTorch archive, as resume,
// export and average read it). Bad input must end in hpt::BadInput, nothing else.
#include <cstdint>
#include <string>

#include "checkpoint/checkpoint_tools.hpp"
#include "hpt/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    hpt::host::read_model_tensors(bytes, "fuzz/model.pt");
  } catch (const hpt::BadInput&) {
  }
  return 0;
}
