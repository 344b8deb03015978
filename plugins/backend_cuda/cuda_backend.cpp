// Backend "cuda": one NVIDIA GPU through a CUDA build of LibTorch, with the engine's
// multi-tensor operations (snapshot, restore, the predicted update, norms) done by the
// fused kernels of kernels/ (hpt/kernels.h): one launch over every parameter instead of
// one LibTorch op per tensor.
//
// Device: option `device`; -1 (the default) takes LOCAL_RANK from the environment when
// it is set (one process per GPU under a launcher), else device 0.
//
// Stream: the backend takes a stream from LibTorch's pool and makes it the current CUDA
// stream of the thread that creates it, which is the engine's training thread. So the
// task's forward and backward passes, the optimizer, LibTorch's copies and the kernels
// here all queue on that one stream, in order, and synchronize() waits for it alone.
// (Autograd runs each backward op on the stream of its forward op: the same stream.)
//
// Determinism (`deterministic`, default on): LibTorch's deterministic algorithms, cuDNN
// deterministic and its benchmark mode off, and CUBLAS_WORKSPACE_CONFIG=:4096:8 (see
// prepare_cublas). The CUDA generator of the device is seeded with run.seed and saved in
// every checkpoint, so a resumed run continues bit for bit. `tf32` (default off) lets
// float32 matmuls and convolutions use TF32 tensor cores (faster; about 1e-3 relative
// error per product).
//
// Threading: the engine calls a backend from its training thread only (hpt/backend.hpp).
// This object keeps a workspace buffer and the stream; it is not thread-safe. If a call
// does come from a thread whose current stream is another one, the backend waits for
// that stream and makes its own current there too (keep_stream_current).
//
// Lifetimes: tensors returned by snapshot() and norms() live on this backend's device and
// were written on its stream. They stay valid until dropped. Work on another stream (a
// background checkpoint thread serialising them) must come after synchronize(), which the
// engine calls before it hands them over.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/Context.h>
#include <c10/core/Storage.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include "hpt/hpt.hpp"
#include "hpt/kernels.h"
#ifdef HPT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#if !HPT_TORCH_CUDA
#error "backend_cuda needs the headers of a CUDA build of LibTorch (see plugins/backend_cuda/CMakeLists.txt)"
#endif
static_assert(HPT_KERNELS_API_VERSION == 1, "cuda_backend.cpp is written against version 1 of hpt/kernels.h");

namespace {

// The key of the CUDA generator's state in backend.pt.
const char* const kGeneratorKey = "cuda_generator_state";

// Smallest workspace kept: enough for the pointer tables of a few thousand tensors.
constexpr std::size_t kMinWorkspaceBytes = 1 << 20;

std::string plural(std::int64_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// The kernels' dtype of a parameter dtype; nullopt where the kernels have none.
std::optional<hpt_dtype> kernel_dtype(c10::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return HPT_FLOAT32;
    case at::kBFloat16:
      return HPT_BFLOAT16;
    case at::kHalf:
      return HPT_FLOAT16;
    default:
      return std::nullopt;
  }
}

constexpr int kDtypes = 3;  // HPT_FLOAT32, HPT_BFLOAT16, HPT_FLOAT16: the index of each batch below

void check_cuda(cudaError_t error, const char* what) {
  if (error != cudaSuccess)
    throw hpt::RunError(std::string("cuda backend: ") + what + " failed: " + cudaGetErrorString(error) + " (" +
                        cudaGetErrorName(error) + ")");
}

std::int64_t bytes_of(const torch::Tensor& t) { return t.numel() * static_cast<std::int64_t>(t.element_size()); }

// cuBLAS is deterministic only with a fixed workspace configuration, which it reads from
// the environment when it creates a handle (the first matmul on a device); LibTorch in
// deterministic mode refuses matmuls without it. So it is set here, before any cuBLAS
// handle exists: the backend is the first plugin the engine creates, and nothing before
// it multiplies matrices on the GPU. A value the user set is kept (":16:8" is the other
// deterministic one).
void prepare_cublas() {
  if (std::getenv("CUBLAS_WORKSPACE_CONFIG") == nullptr) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
}

c10::DeviceIndex parse_local_rank(const char* text) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < 0 || value > 1023)
    throw hpt::BadInput(std::string("cuda backend: LOCAL_RANK='") + text +
                        "' is not a device index (an integer from 0); unset it or set [backend] device");
  return static_cast<c10::DeviceIndex>(value);
}

// Checks that CUDA is usable, picks the device, makes it this thread's current device.
c10::DeviceIndex open_device(const hpt::Options& options, bool deterministic, std::string& origin) {
  if (deterministic) prepare_cublas();
  if (!torch::cuda::is_available())
    throw hpt::BadInput(
        "cuda backend: no CUDA device is usable (torch::cuda::is_available() is false: no NVIDIA GPU, no driver, "
        "or CUDA_VISIBLE_DEVICES hides them all); use [backend] plugin = \"cpu\"");
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  std::int64_t index = options.get_int("device");
  if (index >= 0) {
    origin = "[backend] device = " + std::to_string(index);
  } else if (const char* rank = std::getenv("LOCAL_RANK"); rank != nullptr && *rank != '\0') {
    index = parse_local_rank(rank);
    origin = std::string("LOCAL_RANK=") + rank;
  } else {
    index = 0;
    origin = "the default, device 0";
  }
  if (index >= count)
    throw hpt::BadInput("cuda backend: device " + std::to_string(index) + " (from " + origin +
                        ") does not exist: this machine has " + plural(count, "CUDA device") + ", numbered 0 to " +
                        std::to_string(count - 1) + " (as CUDA_VISIBLE_DEVICES shows them)");
  const auto device = static_cast<c10::DeviceIndex>(index);
  c10::cuda::set_device(device);
  return device;
}

#ifdef HPT_WITH_NCCL
// An NCCL collective in flight. wait() makes this thread's current stream wait for it and
// the host wait for the stream, so that it means "done" as hpt::PendingCollective says.
class NcclPending : public hpt::PendingCollective {
 public:
  NcclPending(c10::intrusive_ptr<c10d::Work> work, std::vector<torch::Tensor> tensors, std::string what,
              const hpt::World& world)
      : work_(std::move(work)), tensors_(std::move(tensors)), what_(std::move(what)), rank_(world.rank),
        size_(world.size) {}
  void wait() override {
    if (!work_) return;
    try {
      work_->wait();
      c10::cuda::getCurrentCUDAStream().synchronize();
    } catch (const std::exception& e) {
      work_.reset();
      throw hpt::RunError("rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": NCCL " + what_ +
                          " failed (another rank died, hangs or left the group): " + e.what());
    }
    work_.reset();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<torch::Tensor> tensors_;
  std::string what_;
  int rank_, size_;
};
#endif

class CudaBackend : public hpt::Backend {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_int("device", -1, "CUDA device index (-1: LOCAL_RANK from the environment when set, else 0)", -1,
                        1023),
        hpt::option_bool("deterministic", true,
                         "deterministic algorithms only: cuDNN deterministic, no cuDNN benchmark, "
                         "CUBLAS_WORKSPACE_CONFIG=:4096:8"),
        hpt::option_bool("tf32", false, "let float32 matmuls and convolutions use TF32 tensor cores"),
    };
  }

  CudaBackend(const hpt::PluginContext& context, const hpt::Options& options)
      : logger_(context.logger),
        deterministic_(options.get_bool("deterministic")),
        index_(open_device(options, deterministic_, origin_)),
        device_(torch::kCUDA, index_),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index_)) {
    c10::cuda::setCurrentCUDAStream(stream_);

    at::Context& ctx = at::globalContext();
    ctx.setDeterministicAlgorithms(deterministic_, /*warn_only=*/false);
    ctx.setDeterministicCuDNN(deterministic_);
    if (deterministic_) ctx.setBenchmarkCuDNN(false);  // benchmark picks algorithms by timing them
    const bool tf32 = options.get_bool("tf32");
    ctx.setAllowTF32CuBLAS(tf32);
    ctx.setAllowTF32CuDNN(tf32);  // LibTorch's default for cuDNN is on: set it either way

    // The engine seeds every generator with run.seed before it creates the backend
    // (torch::manual_seed); seeding this device's again makes the backend's promise
    // independent of that order.
    {
      at::Generator generator = ctx.defaultGenerator(device_);
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(context.seed);
    }

    // The first allocation also initialises LibTorch's CUDA state and caching allocator,
    // which the peak reset below needs.
    workspace(kMinWorkspaceBytes);
    std::size_t free_bytes = 0, total_bytes = 0;
    check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    total_bytes_ = static_cast<std::int64_t>(total_bytes);
    c10::cuda::CUDACachingAllocator::resetPeakStats(index_);

    cudaDeviceProp properties;
    check_cuda(cudaGetDeviceProperties(&properties, index_), "cudaGetDeviceProperties");
    name_ = properties.name;
    if (logger_)
      logger_->info("cuda backend: device {} ({}, {:.1f} GiB, {:.1f} GiB free) from {}; deterministic {}, tf32 {}",
                    static_cast<int>(index_), name_, static_cast<double>(total_bytes) / (1 << 30),
                    static_cast<double>(free_bytes) / (1 << 30), origin_, deterministic_ ? "on" : "off",
                    tf32 ? "on" : "off");
  }

  torch::Device device() const override { return device_; }

  void synchronize() override {
    c10::cuda::CUDAGuard guard(index_);
    keep_stream_current();
    check_cuda(cudaStreamSynchronize(stream_.stream()), "waiting for the device (an earlier kernel or copy)");
  }

  // params[i] += scales[i] * updates[i]. Parameters of a kernel dtype (float32, bfloat16,
  // float16) with float32 updates of the same shape, both contiguous, go through one
  // hpt_fused_predicted_update per parameter dtype, each tensor its own scale group
  // (tensors with the same scale share one). Any other pair is updated by LibTorch's add_
  // on the same stream, so the result is the same either way up to rounding.
  void add_scaled(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& updates,
                  const std::vector<double>& scales) override {
    check_sizes(params.size(), updates.size(), "add_scaled updates");
    check_sizes(params.size(), scales.size(), "add_scaled scales");
    c10::cuda::CUDAGuard guard(index_);
    keep_stream_current();
    torch::NoGradGuard no_grad;

    struct Batch {
      std::vector<void*> params;
      std::vector<const float*> directions;
      std::vector<std::int64_t> numels;
      std::vector<std::int32_t> groups;
      std::vector<float> group_scales;
      std::unordered_map<std::uint64_t, std::int32_t> group_of_scale;  // by the bits of the float scale
    };
    Batch batches[kDtypes];
    for (std::size_t i = 0; i < params.size(); ++i) {
      const torch::Tensor& p = params[i];
      const torch::Tensor& u = updates[i];
      require_here(p, "add_scaled", "parameter", i);
      require_here(u, "add_scaled", "update", i);
      const std::optional<hpt_dtype> dtype = kernel_dtype(p.scalar_type());
      if (!dtype || u.scalar_type() != at::kFloat || !p.is_contiguous() || !u.is_contiguous() ||
          p.sizes() != u.sizes()) {
        p.add_(u, scales[i]);
        continue;
      }
      if (p.numel() == 0) continue;
      Batch& b = batches[*dtype];
      const float scale = static_cast<float>(scales[i]);
      std::uint32_t bits32 = 0;
      std::memcpy(&bits32, &scale, sizeof bits32);
      auto [it, added] = b.group_of_scale.emplace(bits32, static_cast<std::int32_t>(b.group_scales.size()));
      if (added) b.group_scales.push_back(scale);
      b.params.push_back(p.data_ptr());
      b.directions.push_back(static_cast<const float*>(u.data_ptr()));
      b.numels.push_back(p.numel());
      b.groups.push_back(it->second);
    }
    for (int d = 0; d < kDtypes; ++d) {
      Batch& b = batches[d];
      if (b.params.empty()) continue;
      const int n = static_cast<int>(b.params.size());
      const int n_groups = static_cast<int>(b.group_scales.size());
      const std::size_t need = hpt_kernels_workspace_bytes(n, b.numels.data(), n_groups);
      void* ws = workspace(need);
      check_cuda(hpt_fused_predicted_update(n, b.params.data(), static_cast<hpt_dtype>(d), b.directions.data(),
                                            /*offsets=*/nullptr, b.numels.data(), b.groups.data(),
                                            b.group_scales.data(), n_groups, ws, workspace_bytes_, stream_.stream()),
                 "hpt_fused_predicted_update");
    }
  }

  // The L2 norm of each tensor as float32 on the device. Tensors of a kernel dtype that
  // are contiguous go through hpt_fused_l2_norms (one call per dtype); any other through
  // torch::_foreach_norm. Empty tensors have norm 0.
  torch::Tensor norms(const std::vector<torch::Tensor>& tensors) override {
    const auto floats = at::TensorOptions().dtype(at::kFloat).device(device_);
    const auto n = static_cast<std::int64_t>(tensors.size());
    if (n == 0) return at::zeros({0}, floats);
    c10::cuda::CUDAGuard guard(index_);
    keep_stream_current();
    torch::NoGradGuard no_grad;

    struct Batch {
      std::vector<const void*> tensors;
      std::vector<std::int64_t> numels;
      std::vector<std::size_t> positions;
    };
    Batch batches[kDtypes];
    std::vector<torch::Tensor> others;
    std::vector<std::size_t> other_positions, empty_positions;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const torch::Tensor& t = tensors[i];
      require_here(t, "norms", "tensor", i);
      const std::optional<hpt_dtype> dtype = kernel_dtype(t.scalar_type());
      if (!dtype || !t.is_contiguous()) {
        others.push_back(t);
        other_positions.push_back(i);
      } else if (t.numel() == 0) {
        empty_positions.push_back(i);
      } else {
        Batch& b = batches[*dtype];
        b.tensors.push_back(t.data_ptr());
        b.numels.push_back(t.numel());
        b.positions.push_back(i);
      }
    }

    auto launch = [&](Batch& b, int d) {
      const int count = static_cast<int>(b.tensors.size());
      torch::Tensor out = at::empty({count}, floats);
      const std::size_t need = hpt_kernels_workspace_bytes(count, b.numels.data(), 1);
      void* ws = workspace(need);
      check_cuda(hpt_fused_l2_norms(count, b.tensors.data(), static_cast<hpt_dtype>(d), b.numels.data(),
                                    /*groups=*/nullptr, /*n_groups=*/1, out.data_ptr<float>(),
                                    /*out_group_norms=*/nullptr, ws, workspace_bytes_, stream_.stream()),
                 "hpt_fused_l2_norms");
      return out;
    };
    // The common case: every tensor in one call, written straight into the result.
    for (int d = 0; d < kDtypes; ++d)
      if (static_cast<std::int64_t>(batches[d].tensors.size()) == n) return launch(batches[d], d);

    // Otherwise one value per tensor, put in order and stacked (no scatter: index_copy_ is
    // refused on CUDA in deterministic mode by some LibTorch versions).
    std::vector<torch::Tensor> values(tensors.size());
    for (int d = 0; d < kDtypes; ++d) {
      if (batches[d].tensors.empty()) continue;
      std::vector<torch::Tensor> parts = launch(batches[d], d).unbind(0);
      for (std::size_t j = 0; j < parts.size(); ++j) values[batches[d].positions[j]] = parts[j];
    }
    if (!others.empty()) {
      std::vector<torch::Tensor> parts = torch::_foreach_norm(others);
      for (std::size_t j = 0; j < parts.size(); ++j) values[other_positions[j]] = parts[j].to(at::kFloat);
    }
    for (std::size_t i : empty_positions) values[i] = at::zeros({}, floats);
    return torch::stack(values);
  }

  // Copies of `tensors`: those on this device and contiguous through one hpt_fused_copy
  // into fresh buffers; any other (a host tensor, a strided view) by LibTorch's clone.
  std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& tensors) override {
    c10::cuda::CUDAGuard guard(index_);
    keep_stream_current();
    torch::NoGradGuard no_grad;
    CopyBatch batch;
    std::vector<torch::Tensor> out;
    out.reserve(tensors.size());
    for (const torch::Tensor& t : tensors) {
      if (!here(t) || !t.is_contiguous()) {
        out.push_back(t.detach().clone());
        continue;
      }
      torch::Tensor copy = uninitialized_like(t);
      if (t.numel() > 0) batch.add(copy.data_ptr(), t.data_ptr(), bytes_of(t));
      out.push_back(std::move(copy));
    }
    copy_all(batch);
    return out;
  }

  // tensors[i].copy_(snapshot[i]), bit for bit: pairs on this device, contiguous, of one
  // dtype and shape through one hpt_fused_copy; any other pair by LibTorch's copy_.
  void restore(const std::vector<torch::Tensor>& tensors, const std::vector<torch::Tensor>& snapshot) override {
    check_sizes(tensors.size(), snapshot.size(), "restore snapshot");
    c10::cuda::CUDAGuard guard(index_);
    keep_stream_current();
    torch::NoGradGuard no_grad;
    CopyBatch batch;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const torch::Tensor& dst = tensors[i];
      const torch::Tensor& src = snapshot[i];
      if (!here(dst) || !here(src) || !dst.is_contiguous() || !src.is_contiguous() ||
          dst.scalar_type() != src.scalar_type() || dst.sizes() != src.sizes()) {
        dst.copy_(src);
        continue;
      }
      if (dst.numel() > 0) batch.add(dst.data_ptr(), src.data_ptr(), bytes_of(dst));
    }
    copy_all(batch);
  }

  // Data parallelism: NCCL for kind "nccl" and "auto" where this LibTorch has it
  // (HPT_WITH_NCCL, set by CMakeLists.txt), else the SDK's Gloo group.
  void join(const hpt::World& world) override {
    if (world.size <= 1 || world.kind == "gloo") return hpt::Backend::join(world);
#ifdef HPT_WITH_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = world.timeout;
    try {
      nccl_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(world.store, world.rank, world.size, options);
    } catch (const std::exception& e) {
      throw hpt::RunError("rank " + std::to_string(world.rank) + " of " + std::to_string(world.size) +
                          ": cannot start the NCCL process group: " + e.what());
    }
    world_ = world;
    if (logger_) logger_->info("cuda backend: rank {} of {} on NCCL", world.rank, world.size);
#else
    if (world.kind == "nccl")
      throw hpt::BadInput("[distributed] backend = \"nccl\": this build of the cuda backend has no NCCL "
                          "(HPT_WITH_NCCL was not set); use \"gloo\" or \"auto\"");
    hpt::Backend::join(world);
#endif
  }

  std::unique_ptr<hpt::PendingCollective> all_reduce_async(const std::vector<torch::Tensor>& tensors) override {
#ifdef HPT_WITH_NCCL
    if (nccl_ && !tensors.empty()) {
      std::vector<torch::Tensor> list = tensors;
      return std::make_unique<NcclPending>(nccl_->allreduce(list), std::move(list), "all-reduce", world_);
    }
#endif
    return hpt::Backend::all_reduce_async(tensors);
  }

  void broadcast(const std::vector<torch::Tensor>& tensors, int root) override {
#ifdef HPT_WITH_NCCL
    if (nccl_) {
      for (const auto& t : tensors) {
        std::vector<torch::Tensor> one{t};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        NcclPending(nccl_->broadcast(one, options), one, "broadcast", world_).wait();
      }
      return;
    }
#endif
    hpt::Backend::broadcast(tensors, root);
  }

  void barrier() override {
#ifdef HPT_WITH_NCCL
    if (nccl_) {
      NcclPending(nccl_->barrier(), {}, "barrier", world_).wait();
      return;
    }
#endif
    hpt::Backend::barrier();
  }

  hpt::MemoryUse memory_use() const override {
    hpt::MemoryUse use;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index_);
    // Index 0 is StatType::AGGREGATE (the small and large pools together) in LibTorch
    // 1.13 and 2.x alike; the enum moved namespaces in 2.x, the index did not.
    use.allocated = stats.allocated_bytes[0].current;
    use.peak = stats.allocated_bytes[0].peak;
    use.total = total_bytes_;
    return use;
  }

  // The state of this device's CUDA generator (dropout masks, random ops on the GPU),
  // read under the generator's mutex as PyTorch does (torch.cuda.get_rng_state).
  void save(hpt::StateWriter& state) const override {
    at::Generator generator = at::globalContext().defaultGenerator(device_);
    torch::Tensor rng;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng = generator.get_state();
    }
    state.write(kGeneratorKey, rng);
  }

  // A checkpoint without the generator state (written with another backend, e.g. cpu,
  // whose backend.pt is empty) loads gracefully: the generator keeps the state seeded
  // from run.seed, and a warning says that random ops on the GPU will not repeat the
  // uninterrupted run's. A state of the wrong size is refused.
  void load(torch::serialize::InputArchive& archive) override {
    torch::Tensor rng;
    if (!archive.try_read(kGeneratorKey, rng)) {
      if (logger_)
        logger_->warn(
            "cuda backend: the checkpoint has no '{}' (it was written with another backend): the CUDA generator "
            "keeps its seed from run.seed, so random ops on the GPU after the resume differ from an uninterrupted "
            "run's",
            kGeneratorKey);
      return;
    }
    at::Generator generator = at::globalContext().defaultGenerator(device_);
    std::lock_guard<std::mutex> lock(generator.mutex());
    const torch::Tensor current = generator.get_state();
    if (rng.scalar_type() != at::kByte || rng.dim() != 1 || rng.numel() != current.numel())
      throw hpt::BadInput("cuda backend: the checkpoint's '" + std::string(kGeneratorKey) + "' holds " +
                          plural(rng.numel(), "element") + " of " + std::string(c10::toString(rng.scalar_type())) +
                          ", not the " + plural(current.numel(), "byte") +
                          " of a CUDA generator state of this LibTorch (" + TORCH_VERSION + ")");
    generator.set_state(rng.to(at::kCPU).contiguous());
  }

 private:
  struct CopyBatch {
    std::vector<void*> dst;
    std::vector<const void*> src;
    std::vector<std::int64_t> bytes;
    void add(void* d, const void* s, std::int64_t n) {
      dst.push_back(d);
      src.push_back(s);
      bytes.push_back(n);
    }
  };

  void copy_all(const CopyBatch& batch) {
    if (batch.dst.empty()) return;
    const int n = static_cast<int>(batch.dst.size());
    const std::size_t need = hpt_kernels_workspace_bytes(n, batch.bytes.data(), 1);
    void* ws = workspace(need);
    check_cuda(hpt_fused_copy(n, batch.dst.data(), batch.src.data(), batch.bytes.data(), ws, workspace_bytes_,
                              stream_.stream()),
               "hpt_fused_copy");
  }

  // Device memory for the kernels' pointer tables, grown as needed and reused: every
  // call queues on stream_, so the next call's upload waits for the last call's kernel,
  // and a buffer replaced here goes back to the caching allocator's pool of stream_.
  void* workspace(std::size_t bytes) {
    if (!workspace_.defined() || bytes > workspace_bytes_) {
      const std::size_t size = std::max(kMinWorkspaceBytes, bytes + bytes / 2);
      workspace_ = uninitialized_bytes(size);
      workspace_bytes_ = size;
    }
    return workspace_.data_ptr();
  }

  // A tensor like `t` (sizes, dtype) on this device, contiguous, not initialised.
  // at::empty would do, except that with deterministic algorithms on, LibTorch 2.1 and
  // later fill new memory with NaN (fill_uninitialized_memory): a wasted pass over every
  // snapshot. Memory straight from the caching allocator skips it; every byte is written
  // by the copy that follows. Allocated on the current stream, stream_.
  torch::Tensor uninitialized_like(const torch::Tensor& t) {
    torch::Tensor bytes = uninitialized_bytes(static_cast<std::size_t>(bytes_of(t)));
    return at::empty({0}, t.options().device(device_)).set_(bytes.storage(), 0, t.sizes());
  }

  torch::Tensor uninitialized_bytes(std::size_t bytes) {
    // at::empty first: it runs LibTorch's lazy CUDA initialisation, which sets up the
    // caching allocator that the raw allocation below needs.
    torch::Tensor out = at::empty({0}, at::TensorOptions().dtype(at::kByte).device(device_));
    c10::Allocator* allocator = c10::cuda::CUDACachingAllocator::get();
    c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<std::int64_t>(bytes), allocator,
                         /*resizable=*/false);
    const std::int64_t sizes[] = {static_cast<std::int64_t>(bytes)};
    out.set_(storage, 0, sizes);
    return out;
  }

  bool here(const torch::Tensor& t) const { return t.is_cuda() && t.get_device() == index_; }

  void require_here(const torch::Tensor& t, const char* call, const char* what, std::size_t i) const {
    if (!t.defined())
      throw hpt::RunError(std::string("cuda backend: ") + call + ": " + what + " " + std::to_string(i) +
                          " is an undefined tensor");
    if (!here(t))
      throw hpt::RunError(std::string("cuda backend: ") + call + ": " + what + " " + std::to_string(i) + " is on " +
                          t.device().str() + ", not on " + device_.str() +
                          " (a task must put its model and data on context.device)");
  }

  // Makes stream_ current on the calling thread if it is not: after waiting for what the
  // thread's current stream has queued, so nothing queued there races with what follows.
  void keep_stream_current() {
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(index_);
    if (current == stream_) return;
    current.synchronize();
    c10::cuda::setCurrentCUDAStream(stream_);
    if (logger_ && !warned_thread_) {
      warned_thread_ = true;
      logger_->warn("cuda backend: called on a thread whose current stream was not the backend's; it is now (the "
                    "engine should call a backend from the thread that created it)");
    }
  }

  static void check_sizes(std::size_t want, std::size_t got, const char* what) {
    if (want != got)
      throw hpt::RunError(std::string("cuda backend: ") + what + " has " + std::to_string(got) +
                          " tensors, expected " + std::to_string(want));
  }

  std::shared_ptr<spdlog::logger> logger_;
  bool deterministic_;
  std::string origin_;  // where the device index came from, for messages (set by open_device)
  c10::DeviceIndex index_;
  torch::Device device_;
  c10::cuda::CUDAStream stream_;
  torch::Tensor workspace_;
  std::size_t workspace_bytes_ = 0;
  std::int64_t total_bytes_ = -1;
  std::string name_;
#ifdef HPT_WITH_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_;
#endif
  bool warned_thread_ = false;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Backend, "cuda", "1.0.0",
           "one NVIDIA GPU: its own stream, deterministic mode, fused multi-tensor kernels", CudaBackend,
           CudaBackend::option_specs)
