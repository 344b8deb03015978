// libFuzzer target: the hand-written reader of Python's torch.save zip pickles
// (checkpoint/state_dict_pickle.hpp), as task.init_from reads a state_dict. Bad input
// must end in hpt::BadInput, nothing else.
#include <cstdint>
#include <string>

#include "checkpoint/state_dict_pickle.hpp"
#include "hpt/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    hpt::host::read_torch_save_pickle(bytes, "fuzz/state_dict.pt");
  } catch (const hpt::BadInput&) {
  }
  return 0;
}
