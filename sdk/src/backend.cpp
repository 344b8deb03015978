// The Backend's default collectives: a c10d ProcessGroupGloo over the store the host
// built. (LibTorch 2.x made the Gloo group a c10d::Backend under a ProcessGroup; its
// allreduce/broadcast/barrier are the same calls.)
#include <cstdlib>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "hpt/backend.hpp"
#include "hpt/error.hpp"

namespace hpt {

PendingCollective::~PendingCollective() = default;

struct Backend::Group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

namespace {

// Gloo's transport: the interface GLOO_SOCKET_IFNAME names (as in PyTorch), loopback when
// every rank is on this machine (MASTER_ADDR is local), else the one the hostname resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device() {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  const char* master = std::getenv("MASTER_ADDR");
  const std::string addr = master ? master : "";
  if (addr.empty() || addr == "127.0.0.1" || addr == "localhost" || addr == "::1")
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

class GlooPending : public PendingCollective {
 public:
  GlooPending(c10::intrusive_ptr<c10d::Work> work, std::vector<torch::Tensor> tensors, std::string what, int rank,
              int size)
      : work_(std::move(work)), tensors_(std::move(tensors)), what_(std::move(what)), rank_(rank), size_(size) {}
  void wait() override {
    if (!work_) return;
    try {
      work_->wait();
    } catch (const std::exception& e) {
      work_.reset();
      throw RunError("rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": " + what_ +
                     " failed (another rank died, hangs or left the group): " + e.what());
    }
    work_.reset();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<torch::Tensor> tensors_;  // alive until the collective is done
  std::string what_;
  int rank_, size_;
};

class DoneCollective : public PendingCollective {
 public:
  void wait() override {}
};

}  // namespace

void Backend::join(const World& world) {
  if (world.size <= 1) {
    world_ = world;
    return;
  }
  if (world.kind != "gloo" && world.kind != "auto")
    throw BadInput("[distributed] backend = \"" + world.kind + "\": this backend plugin (device " + device().str() +
                   ") offers gloo only");
  if (!world.store) throw RunError("Backend::join: the world has no store");
  auto options = c10d::ProcessGroupGloo::Options::create(world.timeout);
  options->devices.push_back(gloo_device());
  // Two threads: the gradient buckets' all-reduces overlap with the backward pass.
  options->threads = 2;
  auto group = std::make_shared<Group>();
  try {
    group->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(world.store, world.rank, world.size, options);
  } catch (const std::exception& e) {
    throw RunError("rank " + std::to_string(world.rank) + " of " + std::to_string(world.size) +
                   ": cannot connect the Gloo process group: " + e.what());
  }
  group_ = std::move(group);
  world_ = world;
}

std::unique_ptr<PendingCollective> Backend::all_reduce_async(const std::vector<torch::Tensor>& tensors) {
  if (!group_ || tensors.empty()) return std::make_unique<DoneCollective>();
  std::vector<torch::Tensor> list = tensors;
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  auto work = group_->gloo->allreduce(list, options);
  return std::make_unique<GlooPending>(std::move(work), std::move(list), "all-reduce", world_.rank, world_.size);
}

void Backend::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  if (!group_ || tensors.empty()) return;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> one{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    GlooPending(group_->gloo->broadcast(one, options), one, "broadcast", world_.rank, world_.size).wait();
  }
}

void Backend::barrier() {
  if (!group_) return;
  GlooPending(group_->gloo->barrier(), {}, "barrier", world_.rank, world_.size).wait();
}

}  // namespace hpt
