#include "hpt/archive.hpp"

#include "hpt/error.hpp"

namespace hpt {

c10::IValue read_value(torch::serialize::InputArchive& archive, const std::string& key, const std::string& owner) {
  c10::IValue v;
  if (!archive.try_read(key, v)) throw BadInput(owner + ": the checkpoint has no '" + key + "'");
  return v;
}

torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key, const std::string& owner) {
  torch::Tensor t;
  if (!archive.try_read(key, t)) throw BadInput(owner + ": the checkpoint has no '" + key + "'");
  return t;
}

}  // namespace hpt
