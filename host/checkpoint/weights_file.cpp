#include "checkpoint/weights_file.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include "checkpoint/checkpoint_tools.hpp"
#include "checkpoint/state_dict_pickle.hpp"
#include "checkpoint_format/checkpoint_compression.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

std::string tensor_shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (std::int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

// True for a module archive (torch::nn::Module::save, torch::jit::save): it has constants.pkl
// and code/, which torch.save's pickles do not.
bool is_module_archive(const std::string& bytes) {
  std::istringstream stream(bytes);
  try {
    caffe2::serialize::PyTorchStreamReader zip(&stream);
    return zip.hasRecord("constants.pkl");
  } catch (const c10::Error&) {
    return false;
  }
}

NamedTensors tensors_of_dict(const c10::IValue& value, const std::string& what) {
  if (!value.isGenericDict())
    throw BadInput(what + " holds a " + value.tagKind() + ", not a dict of tensors (a state_dict)");
  NamedTensors out;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) throw BadInput(what + ": a key is a " + item.key().tagKind() + ", not a name");
    if (!item.value().isTensor())
      throw BadInput(what + ": '" + item.key().toStringRef() + "' is a " + item.value().tagKind() + ", not a tensor");
    out.emplace_back(item.key().toStringRef(), item.value().toTensor());
  }
  return out;
}

}  // namespace

NamedTensors read_weights_file(const std::string& path) {
  const std::string absolute = fs::absolute(path).lexically_normal().string();
  const std::string what = "weights file " + absolute;
  std::error_code ec;
  if (!fs::is_regular_file(absolute, ec))
    throw BadInput(what + (fs::exists(absolute, ec) ? " is not a file" : " does not exist"));
  std::ifstream in(absolute, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) throw BadInput("cannot read " + what);
  checkpoint::decompress_if_zstd(bytes, what);  // a checkpoint's model.pt saved with compression = "zstd"
  if (is_module_archive(bytes)) return read_model_tensors(bytes, what);
  try {
    return tensors_of_dict(torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())), what);
  } catch (const c10::Error&) {
    // LibTorch's unpickler refuses Python's OrderedDict state_dicts: read them by hand.
  }
  return tensors_of_dict(read_torch_save_pickle(bytes, what), what);
}

void copy_weights_into(torch::nn::Module& model, const NamedTensors& weights, const std::string& source) {
  std::map<std::string, torch::Tensor> given(weights.begin(), weights.end());
  std::vector<std::string> problems;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;  // (model's, given)
  auto match = [&](const std::string& name, const torch::Tensor& own) {
    auto it = given.find(name);
    if (it == given.end()) {
      problems.push_back("'" + name + "' (shape " + tensor_shape_text(own) + ") is missing");
      return;
    }
    if (!it->second.sizes().equals(own.sizes()))
      problems.push_back("'" + name + "' has shape " + tensor_shape_text(it->second) + ", the model's has " + tensor_shape_text(own));
    else
      copies.emplace_back(own, it->second);
    given.erase(it);
  };
  for (const auto& p : model.named_parameters(/*recurse=*/true)) match(p.key(), p.value());
  for (const auto& b : model.named_buffers(/*recurse=*/true)) match(b.key(), b.value());
  for (const auto& [name, tensor] : given)
    problems.push_back("'" + name + "' (shape " + tensor_shape_text(tensor) + ") is not in the model");
  if (!problems.empty()) {
    std::string text = source + " does not fit the model:";
    for (const auto& p : problems) text += "\n    " + p;
    throw BadInput(text);
  }
  torch::NoGradGuard no_grad;
  for (auto& [own, value] : copies) own.copy_(value);
}

}  // namespace hpt::host
