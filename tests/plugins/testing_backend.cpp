// A small, working CPU backend whose descriptor the build bends per variant (see
// CMakeLists.txt), so the tests see every way a plugin library can be wrong.
#include <stdexcept>

#include "hpt/hpt.hpp"

#ifdef HPT_TEST_ABI_MAJOR
#undef HPT_SDK_ABI_MAJOR
#define HPT_SDK_ABI_MAJOR HPT_TEST_ABI_MAJOR
#endif
#ifdef HPT_TEST_ABI_MINOR_NEWER
static_assert(HPT_SDK_ABI_MINOR < 99, "the newer-minor variant assumes a small minor");
#undef HPT_SDK_ABI_MINOR
#define HPT_SDK_ABI_MINOR 99
#endif
#ifdef HPT_TEST_TORCH_VERSION
#undef HPT_TORCH_VERSION_STRING
#define HPT_TORCH_VERSION_STRING HPT_TEST_TORCH_VERSION
#endif
#ifdef HPT_TEST_FLIP_CXX11_ABI
#undef HPT_CXX11_ABI
#define HPT_CXX11_ABI (1 - _GLIBCXX_USE_CXX11_ABI)
#endif
#ifdef HPT_TEST_FLIP_TORCH_CUDA
// The other LibTorch flavour: a CUDA build where the host has a CPU one, or the reverse.
#if HPT_TORCH_CUDA
#undef HPT_TORCH_CUDA
#define HPT_TORCH_CUDA 0
#else
#undef HPT_TORCH_CUDA
#define HPT_TORCH_CUDA 1
#endif
#endif
#ifndef HPT_TEST_NAME
#define HPT_TEST_NAME "testing"
#endif

namespace {

class TestingBackend : public hpt::Backend {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {hpt::option_string("mood", "calm", "a string option with choices", {"calm", "busy"})};
  }
  TestingBackend(const hpt::PluginContext&, const hpt::Options& options) {
#ifdef HPT_TEST_FACTORY_THROWS
    (void)options;
    throw std::runtime_error("testing backend refuses to start: the GPU is on fire");
#else
    (void)options.get_string("mood");
#endif
  }
  torch::Device device() const override { return torch::kCPU; }
  void synchronize() override {}
  void add_scaled(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& updates,
                  const std::vector<double>& scales) override {
    torch::NoGradGuard guard;
    for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(updates[i], scales[i]);
  }
  torch::Tensor norms(const std::vector<torch::Tensor>& tensors) override {
    std::vector<torch::Tensor> n;
    for (const auto& t : tensors) n.push_back(t.norm());
    return torch::stack(n);
  }
  std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& tensors) override {
    std::vector<torch::Tensor> out;
    for (const auto& t : tensors) out.push_back(t.detach().clone());
    return out;
  }
  void restore(const std::vector<torch::Tensor>& tensors, const std::vector<torch::Tensor>& snap) override {
    torch::NoGradGuard guard;
    for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(snap[i]);
  }
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Backend, HPT_TEST_NAME, "0.0.1", "test backend for the loader's error paths",
           TestingBackend, TestingBackend::option_specs)
