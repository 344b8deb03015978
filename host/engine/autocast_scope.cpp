#include "engine/autocast_scope.hpp"

#include <ATen/autocast_mode.h>

#include "hpt/version.hpp"

namespace hpt::host {

namespace {

// LibTorch 2.4 replaced the per-device functions (set_cpu_enabled, set_autocast_gpu_dtype,
// ...) by ones that take the device type; the old ones are deprecated there.
#if HPT_TORCH_AT_LEAST(2, 4)
bool enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void set_enabled(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
c10::ScalarType dtype_of(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void set_dtype(c10::DeviceType d, c10::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
bool enabled(c10::DeviceType d) { return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled(); }
void set_enabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CPU) at::autocast::set_cpu_enabled(on);
  else at::autocast::set_enabled(on);
}
c10::ScalarType dtype_of(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_dtype(c10::DeviceType d, c10::ScalarType t) {
  if (d == c10::DeviceType::CPU) at::autocast::set_autocast_cpu_dtype(t);
  else at::autocast::set_autocast_gpu_dtype(t);
}
#endif

bool reduced(c10::ScalarType dtype) { return dtype == c10::ScalarType::BFloat16 || dtype == c10::ScalarType::Half; }

}  // namespace

std::string AutocastScope::unsupported(c10::DeviceType device, c10::ScalarType dtype) {
  if (!reduced(dtype)) return "";
  if (device == c10::DeviceType::CUDA) return "";
  if (device == c10::DeviceType::CPU) {
    if (dtype == c10::ScalarType::BFloat16) return "";
    return "fp16 autocast needs a CUDA device: LibTorch's CPU kernels have no fp16 matrix products; "
           "on the CPU use precision = \"bf16\"";
  }
  return std::string("autocast is not supported on ") + c10::DeviceTypeName(device) + " devices";
}

AutocastScope::AutocastScope(c10::DeviceType device, c10::ScalarType dtype) : device_(device) {
  if (!reduced(dtype)) return;
  was_enabled_ = enabled(device);
  previous_dtype_ = dtype_of(device);
  set_dtype(device, dtype);
  set_enabled(device, true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // Leaving the outermost scope drops the casts autocast cached for this forward pass,
  // as torch.autocast.__exit__ does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, was_enabled_);
  set_dtype(device_, previous_dtype_);
}

}  // namespace hpt::host
