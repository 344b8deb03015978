// libFuzzer target: the checkpoint load path's model.pt (a LibTorch archive, as resume,
// export and average read it), stored as it is or as a zstd frame (compression = "zstd":
// decompressed first, as read_checkpoint and read_weights_file do; the corpus has one,
// model.pt.zst). Bad input must end in hpt::BadInput, nothing else.
#include <cstdint>
#include <string>

#include "checkpoint/checkpoint_tools.hpp"
#include "checkpoint_format/checkpoint_compression.hpp"
#include "hpt/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    hpt::checkpoint::decompress_if_zstd(bytes, "fuzz/model.pt");
    hpt::host::read_model_tensors(bytes, "fuzz/model.pt");
  } catch (const hpt::BadInput&) {
  }
  return 0;
}
