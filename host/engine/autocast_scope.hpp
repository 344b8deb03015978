// AutocastScope: LibTorch's autocast switched on for one device type and dtype while the
// scope lives (the C++ counterpart of `with torch.autocast(device, dtype)`), and the
// thread's previous autocast state put back when it ends.
#pragma once

#include <torch/torch.h>

namespace hpt::host {

class AutocastScope {
 public:
  // dtype kFloat32 (or any dtype other than kBFloat16/kHalf) leaves autocast alone.
  AutocastScope(c10::DeviceType device, c10::ScalarType dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

  // Whether LibTorch can autocast `device` to `dtype` at all ("" when it can, else why not).
  static std::string unsupported(c10::DeviceType device, c10::ScalarType dtype);

 private:
  bool active_ = false;
  c10::DeviceType device_;
  bool was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Float;
};

}  // namespace hpt::host
