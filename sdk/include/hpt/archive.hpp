// Reading plugin state back from a checkpoint archive: the value or tensor under a key,
// or hpt::BadInput "<owner>: the checkpoint has no '<key>'" when it is missing.
#pragma once

#include <string>

#include <torch/serialize/archive.h>

namespace hpt {

c10::IValue read_value(torch::serialize::InputArchive& archive, const std::string& key, const std::string& owner);
torch::Tensor read_tensor(torch::serialize::InputArchive& archive, const std::string& key, const std::string& owner);

}  // namespace hpt
