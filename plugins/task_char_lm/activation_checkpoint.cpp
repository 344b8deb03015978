#include "activation_checkpoint.hpp"

#include <mutex>
#include <optional>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/autograd.h>

#include "hpt/version.hpp"

namespace hpt::char_lm {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// LibTorch 2.4 replaced the per-device autocast functions by ones that take the device
// type (as host/engine/autocast_scope.cpp does too).
#if HPT_TORCH_AT_LEAST(2, 4)
bool autocast_enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void set_autocast_enabled(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
c10::ScalarType autocast_dtype(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void set_autocast_dtype(c10::DeviceType d, c10::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
bool autocast_enabled(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void set_autocast_enabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CPU) at::autocast::set_cpu_enabled(on);
  else at::autocast::set_enabled(on);
}
c10::ScalarType autocast_dtype(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_autocast_dtype(c10::DeviceType d, c10::ScalarType t) {
  if (d == c10::DeviceType::CPU) at::autocast::set_autocast_cpu_dtype(t);
  else at::autocast::set_autocast_gpu_dtype(t);
}
#endif

// The thread's autocast state for the device types hpt autocasts.
struct AutocastState {
  bool cpu = false, cuda = false, cache = true;
  c10::ScalarType cpu_dtype = c10::ScalarType::BFloat16, cuda_dtype = c10::ScalarType::Half;

  static AutocastState current() {
    return {autocast_enabled(c10::DeviceType::CPU), autocast_enabled(c10::DeviceType::CUDA),
            at::autocast::is_autocast_cache_enabled(), autocast_dtype(c10::DeviceType::CPU),
            autocast_dtype(c10::DeviceType::CUDA)};
  }
  void make_current() const {
    set_autocast_dtype(c10::DeviceType::CPU, cpu_dtype);
    set_autocast_dtype(c10::DeviceType::CUDA, cuda_dtype);
    set_autocast_enabled(c10::DeviceType::CPU, cpu);
    set_autocast_enabled(c10::DeviceType::CUDA, cuda);
    at::autocast::set_autocast_cache_enabled(cache);
  }
};

// While it lives, the thread autocasts as `state` says, with autocast's weight-cast cache
// off, and afterwards as before. The cache must be off around both passes: a cast made
// in the forward (grad mode off) has no autograd history, and one cached then would be
// handed to later grad-mode uses of the same weight, which would get no gradient.
class AutocastAs {
 public:
  explicit AutocastAs(AutocastState state) : previous_(AutocastState::current()) {
    state.cache = false;
    state.make_current();
  }
  ~AutocastAs() { previous_.make_current(); }
  AutocastAs(const AutocastAs&) = delete;
  AutocastAs& operator=(const AutocastAs&) = delete;

 private:
  AutocastState previous_;
};

torch::Tensor generator_state(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(at::Generator generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// The states of the generators random operations on `device` draw from: the CPU's, and
// the device's own when it is not the CPU (torch.utils.checkpoint keeps the same two).
struct RandomState {
  torch::Tensor cpu;
  std::optional<c10::Device> device;
  torch::Tensor on_device;

  static RandomState current(const c10::Device& device) {
    RandomState s;
    s.cpu = generator_state(at::globalContext().defaultGenerator(c10::DeviceType::CPU));
    if (!device.is_cpu()) {
      s.device = device;
      s.on_device = generator_state(at::globalContext().defaultGenerator(device));
    }
    return s;
  }
  void make_current() const {
    set_generator_state(at::globalContext().defaultGenerator(c10::DeviceType::CPU), cpu);
    if (device) set_generator_state(at::globalContext().defaultGenerator(*device), on_device);
  }
};

// While it lives, the generators are as `saved` was; afterwards they are as before, so the
// recomputation draws the forward's numbers again and leaves the run's stream alone.
class RandomStateAs {
 public:
  RandomStateAs(const RandomState& saved, const c10::Device& device) : previous_(RandomState::current(device)) {
    saved.make_current();
  }
  ~RandomStateAs() { previous_.make_current(); }
  RandomStateAs(const RandomStateAs&) = delete;
  RandomStateAs& operator=(const RandomStateAs&) = delete;

 private:
  RandomState previous_;
};

// What backward needs besides the saved tensors. AutogradContext keeps non-tensor data as
// IValues only; a capsule is the IValue that holds an arbitrary C++ object.
struct SavedPart : torch::CustomClassHolder {
  TensorFunction part;
  AutocastState autocast;
  RandomState random;
};

class Checkpoint : public torch::autograd::Function<Checkpoint> {
 public:
  // Function::apply runs this with grad mode off: part(input) records no graph.
  static torch::Tensor forward(AutogradContext* ctx, const TensorFunction& part, const torch::Tensor& input,
                               at::TensorList parameters) {
    auto saved = c10::make_intrusive<SavedPart>();
    saved->part = part;
    saved->autocast = AutocastState::current();
    saved->random = RandomState::current(input.device());
    ctx->saved_data["part"] = c10::IValue::make_capsule(saved);
    variable_list to_save{input};
    to_save.insert(to_save.end(), parameters.begin(), parameters.end());
    ctx->save_for_backward(to_save);
    AutocastAs autocast(saved->autocast);
    return part(input);
  }

  // Gradients for forward's arguments: none for `part`, then input's, then each parameter's.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "activation checkpointing does not support double backward (create_graph)");
    auto* saved = static_cast<SavedPart*>(ctx->saved_data.at("part").toCapsule().get());
    const variable_list tensors = ctx->get_saved_variables();
    const torch::Tensor& input = tensors.at(0);

    // The forward again, this time recording its graph, from a detached copy of the input
    // so the graph ends there; the same random numbers and autocast as the first time.
    torch::Tensor detached = input.detach().requires_grad_(input.requires_grad());
    torch::Tensor output;
    {
      RandomStateAs random(saved->random, input.device());
      AutocastAs autocast(saved->autocast);
      torch::AutoGradMode grad_mode(true);
      output = saved->part(detached);
    }

    variable_list wanted;  // the tensors to differentiate for, and where each result goes
    std::vector<std::size_t> slot;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].requires_grad()) continue;
      wanted.push_back(i == 0 ? detached : tensors[i]);
      slot.push_back(i + 1);  // result 0 is `part`'s
    }
    variable_list result(tensors.size() + 1);
    if (wanted.empty() || !output.requires_grad()) return result;
    variable_list grads = torch::autograd::grad({output}, wanted, {grad_outputs.at(0)}, /*retain_graph=*/false,
                                                /*create_graph=*/false, /*allow_unused=*/true);
    for (std::size_t k = 0; k < grads.size(); ++k) result[slot[k]] = grads[k];
    return result;
  }
};

}  // namespace

torch::Tensor checkpointed(const TensorFunction& part, const torch::Tensor& input,
                           const std::vector<torch::Tensor>& parameters) {
  if (!torch::GradMode::is_enabled()) return part(input);
  return Checkpoint::apply(part, input, at::TensorList(parameters));
}

}  // namespace hpt::char_lm
