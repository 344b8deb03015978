// Backend "cpu": LibTorch's CPU device, its intra-op thread pool, a deterministic mode,
// and the multi-tensor operations of the engine (norms with torch::_foreach_norm).
#include <thread>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "hpt/hpt.hpp"

namespace {

class CpuBackend : public hpt::Backend {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_int("threads", 0, "intra-op threads (0: every core of the machine)", 0, 1024),
        hpt::option_bool("deterministic", true, "ask LibTorch for deterministic algorithms only"),
    };
  }

  CpuBackend(const hpt::PluginContext& context, const hpt::Options& options) {
    std::int64_t threads = options.get_int("threads");
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    torch::set_num_threads(static_cast<int>(threads));
    if (options.get_bool("deterministic")) at::globalContext().setDeterministicAlgorithms(true, false);
    if (context.logger) context.logger->debug("cpu backend: {} threads", torch::get_num_threads());
  }

  torch::Device device() const override { return torch::kCPU; }
  void synchronize() override {}

  void add_scaled(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& updates,
                  const std::vector<double>& scales) override {
    check_sizes(params.size(), updates.size(), "add_scaled updates");
    check_sizes(params.size(), scales.size(), "add_scaled scales");
    torch::NoGradGuard no_grad;
    // One pass per tensor (p += s * u fused in add_), no temporaries: the predicted step
    // is bound by memory traffic, and _foreach_mul followed by _foreach_add_ read and
    // wrote every weight twice.
    for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(updates[i], scales[i]);
  }

  torch::Tensor norms(const std::vector<torch::Tensor>& tensors) override {
    if (tensors.empty()) return torch::zeros({0});
    torch::NoGradGuard no_grad;
    return torch::stack(torch::_foreach_norm(tensors));
  }

  std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& tensors) override {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> out;
    out.reserve(tensors.size());
    for (const auto& t : tensors) out.push_back(t.detach().clone());
    return out;
  }

  void restore(const std::vector<torch::Tensor>& tensors, const std::vector<torch::Tensor>& snapshot) override {
    check_sizes(tensors.size(), snapshot.size(), "restore snapshot");
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(snapshot[i]);
  }

  // The machine's physical memory; LibTorch's CPU allocator keeps no statistics.
  hpt::MemoryUse memory_use() const override {
    hpt::MemoryUse use;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) use.total = static_cast<std::int64_t>(pages) * page;
    return use;
  }

 private:
  static void check_sizes(std::size_t want, std::size_t got, const char* what) {
    if (want != got)
      throw hpt::RunError(std::string("cpu backend: ") + what + " has " + std::to_string(got) + " tensors, expected " +
                          std::to_string(want));
  }
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Backend, "cpu", "1.0.0", "LibTorch CPU: threads, deterministic mode, fused foreach ops",
           CpuBackend, CpuBackend::option_specs)
