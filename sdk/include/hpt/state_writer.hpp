// What a plugin's save() writes into a checkpoint.
//
// The host hands every save() a StateWriter. When the checkpoint is saved in the
// background ([checkpointer] background = true), the writer copies what it is given at
// the moment it is written: tensors are cloned under no-grad, and tensors that view one
// storage come back as views of one copy, so two views of one buffer stay two views (and
// keep their own values). The host then serialises the copies on another thread while
// training goes on, so save() may write live state. In a foreground save nothing is
// copied: the host serialises before training resumes.
//
// On disk every file is a LibTorch archive, read back by Plugin::load through
// torch::serialize::InputArchive (hpt/archive.hpp has helpers that name a missing key).
//
// Threading: a StateWriter is used on the training thread, inside save(), and must not
// be kept after save() returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/output-archive.h>

namespace hpt {

class StateWriter {
 public:
  // Host side: writes into `archive`; `copy` copies what is written (see above).
  StateWriter(torch::serialize::OutputArchive& archive, bool copy);
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // A tensor (an undefined one is written as it is).
  void write(const std::string& key, const torch::Tensor& tensor);
  // A value: a number, bool, string, or a list of them; a tensor or list of tensors is
  // copied as write(tensor) does. Throws hpt::RunError for other values that hold tensors
  // (write those tensors one by one).
  void write(const std::string& key, const c10::IValue& value);
  // A module's parameters and buffers under `key`, laid out as torch::nn::Module::save
  // lays them out (so torch::load and Module::load read it back).
  void write(const std::string& key, const torch::nn::Module& module);
  // A torch::optim optimizer under `key`, as Optimizer::save writes it (Optimizer::load
  // reads it back). Copied with its per-parameter state: Adam, AdamW, SGD, RMSprop and
  // Adagrad state by cloning its tensors, other state through LibTorch's serialisation.
  void write(const std::string& key, torch::optim::Optimizer& optimizer);
  // A nested archive under `key`, filled by `fill` (read back with InputArchive::read(key, nested)).
  void write_nested(const std::string& key, const std::function<void(StateWriter&)>& fill);

  // The module's parameters and buffers at this level (as Module::save writes them).
  void write_module_contents(const torch::nn::Module& module);

  // Bytes copied so far (0 when not copying): the host's size hint for serialising.
  std::int64_t copied_bytes() const;

 private:
  struct Copies;
  StateWriter(torch::serialize::OutputArchive& archive, std::shared_ptr<Copies> copies);
  torch::Tensor stored(const torch::Tensor& tensor) const;

  torch::serialize::OutputArchive& archive_;
  std::shared_ptr<Copies> copies_;  // null when not copying; shared with nested writers
};

}  // namespace hpt
