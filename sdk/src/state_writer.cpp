#include "hpt/state_writer.hpp"

#include <sstream>
#include <unordered_map>

#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>
#include <torch/serialize/input-archive.h>

#include "hpt/error.hpp"

namespace hpt {

// One copy of each storage written through a checkpoint file's writers: a tensor that
// views a storage already copied becomes the same view of that copy. (jit::Module's
// deepcopy, which hpt used before, treats every tensor of one storage as the first one.)
struct StateWriter::Copies {
  struct Copy {
    c10::Storage original;  // held, so that its address is not reused by a later temporary
    c10::Storage copy;
  };
  std::unordered_map<const c10::StorageImpl*, Copy> storages;
  std::int64_t bytes = 0;

  torch::Tensor copy(const torch::Tensor& tensor) {
    if (!tensor.defined()) return tensor;
    torch::NoGradGuard no_grad;
    const torch::Tensor plain = tensor.detach();
    if (!plain.has_storage()) return plain.clone();  // sparse and other storage-less layouts
    const c10::Storage& storage = plain.storage();
    auto found = storages.find(storage.unsafeGetStorageImpl());
    if (found == storages.end()) {
      const auto nbytes = static_cast<std::int64_t>(storage.nbytes());
      torch::Tensor all_bytes =
          torch::empty({0}, plain.options().dtype(torch::kUInt8)).set_(storage, 0, {nbytes}, {1});
      found = storages.emplace(storage.unsafeGetStorageImpl(), Copy{storage, all_bytes.clone().storage()}).first;
      bytes += nbytes;
    }
    return torch::empty({0}, plain.options()).set_(found->second.copy, plain.storage_offset(), plain.sizes(), plain.strides());
  }
};

StateWriter::StateWriter(torch::serialize::OutputArchive& archive, bool copy)
    : archive_(archive), copies_(copy ? std::make_shared<Copies>() : nullptr) {}

StateWriter::StateWriter(torch::serialize::OutputArchive& archive, std::shared_ptr<Copies> copies)
    : archive_(archive), copies_(std::move(copies)) {}

StateWriter::~StateWriter() = default;

std::int64_t StateWriter::copied_bytes() const { return copies_ ? copies_->bytes : 0; }

torch::Tensor StateWriter::stored(const torch::Tensor& tensor) const {
  return copies_ ? copies_->copy(tensor) : tensor;
}

void StateWriter::write(const std::string& key, const torch::Tensor& tensor) { archive_.write(key, stored(tensor)); }

void StateWriter::write(const std::string& key, const c10::IValue& value) {
  if (value.isTensor()) return write(key, value.toTensor());
  if (value.isTensorList()) {
    std::vector<torch::Tensor> tensors = value.toTensorVector();
    for (torch::Tensor& t : tensors) t = stored(t);
    archive_.write(key, c10::IValue(tensors));
    return;
  }
  bool holds_tensor = false;
  value.visit([&](const c10::IValue& inner) {
    holds_tensor = holds_tensor || inner.isTensor();
    return holds_tensor;  // stop at the first tensor
  });
  if (holds_tensor && copies_)
    throw RunError("checkpoint state '" + key + "' is a " + value.tagKind() +
                   " holding tensors; write its tensors one by one");
  archive_.write(key, value);
}

void StateWriter::write_module_contents(const torch::nn::Module& module) {
  // torch::nn::Module::save's layout, with each tensor stored as write() stores it.
  for (const auto& parameter : module.named_parameters(/*recurse=*/false)) archive_.write(parameter.key(), stored(parameter.value()));
  for (const auto& buffer : module.named_buffers(/*recurse=*/false))
    archive_.write(buffer.key(), stored(buffer.value()), /*is_buffer=*/true);
  for (const auto& child : module.named_children())
    if (child.value()->is_serializable())
      write_nested(child.key(), [&](StateWriter& nested) { nested.write_module_contents(*child.value()); });
}

void StateWriter::write(const std::string& key, const torch::nn::Module& module) {
  write_nested(key, [&](StateWriter& nested) { nested.write_module_contents(module); });
}

void StateWriter::write_nested(const std::string& key, const std::function<void(StateWriter&)>& fill) {
  torch::serialize::OutputArchive nested(archive_.compilation_unit());
  StateWriter writer(nested, copies_);
  fill(writer);
  archive_.write(key, nested);
}

namespace {

using ParamState = torch::optim::OptimizerParamState;

// A copy of one parameter's optimizer state that shares no tensor with it.
template <class Copy>
std::unique_ptr<ParamState> copied_state(const ParamState& state, Copy&& copy) {
  using namespace torch::optim;
  std::unique_ptr<ParamState> result = state.clone();  // same type, same tensors
  if (auto* s = dynamic_cast<AdamParamState*>(result.get())) {
    s->exp_avg(copy(s->exp_avg())).exp_avg_sq(copy(s->exp_avg_sq())).max_exp_avg_sq(copy(s->max_exp_avg_sq()));
  } else if (auto* s = dynamic_cast<AdamWParamState*>(result.get())) {
    s->exp_avg(copy(s->exp_avg())).exp_avg_sq(copy(s->exp_avg_sq())).max_exp_avg_sq(copy(s->max_exp_avg_sq()));
  } else if (auto* s = dynamic_cast<SGDParamState*>(result.get())) {
    s->momentum_buffer(copy(s->momentum_buffer()));
  } else if (auto* s = dynamic_cast<RMSpropParamState*>(result.get())) {
    s->square_avg(copy(s->square_avg())).momentum_buffer(copy(s->momentum_buffer())).grad_avg(copy(s->grad_avg()));
  } else if (auto* s = dynamic_cast<AdagradParamState*>(result.get())) {
    s->sum(copy(s->sum()));
  } else {
    // A state type hpt does not know (LBFGS, a user's own): copied through LibTorch's
    // own serialisation of it, which every state type has.
    torch::serialize::OutputArchive out;
    state.serialize(out);
    std::stringstream bytes;
    out.save_to(bytes);
    torch::serialize::InputArchive in;
    in.load_from(bytes);
    result->serialize(in);
  }
  return result;
}

}  // namespace

void StateWriter::write(const std::string& key, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive nested(archive_.compilation_unit());
  if (!copies_) {
    optimizer.save(nested);
  } else {
    // Optimizer::save writes the live state's tensors; it is given copies instead, swapped
    // in for the duration of the save (on the training thread, so nothing steps meanwhile).
    auto& live = optimizer.state();
    std::remove_reference_t<decltype(live)> copies;
    for (const auto& [id, state] : live)
      copies.emplace(id, copied_state(*state, [&](const torch::Tensor& t) { return copies_->copy(t); }));
    std::swap(live, copies);
    try {
      optimizer.save(nested);
    } catch (...) {
      std::swap(live, copies);
      throw;
    }
    std::swap(live, copies);
  }
  archive_.write(key, nested);
}

}  // namespace hpt
