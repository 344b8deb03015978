// The Backend's default collectives: a c10d ProcessGroupGloo over the store the host
// built. (LibTorch 2.x made the Gloo group a c10d::Backend under a ProcessGroup; its
// allreduce/broadcast/barrier are the same calls.)
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <fstream>
#include <thread>
#include <sstream>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "hpt/backend.hpp"
#include "hpt/error.hpp"

namespace hpt {

PendingCollective::~PendingCollective() = default;

struct Peer {
  std::string host;
  long pid = 0;
};

struct Backend::Group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::shared_ptr<const std::vector<Peer>> peers;  // every rank's host and process id, exchanged at join
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

std::string this_host() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

// What became of a process: "exited" (gone, or a zombie not yet reaped), "stopped"
// (SIGSTOP, a debugger), or "" while it runs (or when there is no procfs to ask).
std::string process_state(long pid) {
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return "exited";
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return "";
  const auto paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return "";
  const char state = line[paren + 2];
  if (state == 'Z' || state == 'X') return "exited";
  if (state == 'T' || state == 't') return "stopped";
  return "";
}

// Which ranks are gone, as far as this process can tell: a rank on this host whose
// process no longer exists has died; ranks on other hosts cannot be checked from here.
// A killed peer's sockets close while its process is still exiting, so the collective can
// fail a moment before the process looks gone: the local peers are looked at again for up
// to half a second before "still running" is said.
std::string peers_status(const std::vector<Peer>& peers, int self) {
  const std::string host = this_host();
  std::vector<std::string> gone;
  std::vector<int> remote;
  for (int attempt = 0; attempt < 10; ++attempt) {
    gone.clear();
    remote.clear();
    bool local = false;
    for (std::size_t r = 0; r < peers.size(); ++r) {
      if (static_cast<int>(r) == self) continue;
      if (peers[r].host != host) {
        remote.push_back(static_cast<int>(r));
        continue;
      }
      local = true;
      const std::string state = process_state(peers[r].pid);
      if (state == "exited")
        gone.push_back("rank " + std::to_string(r) + " (pid " + std::to_string(peers[r].pid) + ") has exited");
      else if (state == "stopped")
        gone.push_back("rank " + std::to_string(r) + " (pid " + std::to_string(peers[r].pid) + ") is stopped");
    }
    if (!gone.empty() || !local) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::ostringstream s;
  for (std::size_t i = 0; i < gone.size(); ++i) s << (i ? "; " : "") << gone[i];
  if (gone.empty()) s << "every other rank on this host is still running (one may hang)";
  if (!remote.empty()) s << "; " << remote.size() << " rank(s) on other hosts (from rank " << remote.front() << ") cannot be checked from here";
  return s.str();
}

class GlooPending : public PendingCollective {
 public:
  GlooPending(c10::intrusive_ptr<c10d::Work> work, std::vector<torch::Tensor> tensors, std::string what, int rank,
              int size, std::shared_ptr<const std::vector<Peer>> peers)
      : work_(std::move(work)), tensors_(std::move(tensors)), what_(std::move(what)), rank_(rank), size_(size),
        peers_(std::move(peers)) {}
  void wait() override {
    if (!work_) return;
    try {
      work_->wait();
    } catch (const std::exception& e) {
      work_.reset();
      throw RunError("rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ": " + what_ +
                     " failed (another rank died, hangs or left the group): " + peers_status(*peers_, rank_) + ". " +
                     "Gloo said: " + e.what());
    }
    work_.reset();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<torch::Tensor> tensors_;  // alive until the collective is done
  std::string what_;
  int rank_, size_;
  std::shared_ptr<const std::vector<Peer>> peers_;
};

class DoneCollective : public PendingCollective {
 public:
  void wait() override {}
};

}  // namespace

void Backend::update_average(const std::vector<torch::Tensor>& averages, const std::vector<torch::Tensor>& tensors,
                             double decay) {
  if (averages.size() != tensors.size())
    throw RunError("Backend::update_average: " + std::to_string(averages.size()) + " averages for " +
                   std::to_string(tensors.size()) + " tensors");
  if (averages.empty()) return;
  torch::NoGradGuard no_grad;
  torch::_foreach_mul_(averages, decay);
  torch::_foreach_add_(averages, tensors, 1.0 - decay);
}

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
  // Every rank's host and process id, so that a failed collective can say which rank is gone.
  const std::string me = this_host() + " " + std::to_string(static_cast<long>(::getpid()));
  world.store->set("peer/" + std::to_string(world.rank), std::vector<std::uint8_t>(me.begin(), me.end()));
  auto peers = std::make_shared<std::vector<Peer>>();
  for (int r = 0; r < world.size; ++r) {
    std::vector<std::uint8_t> v = world.store->get("peer/" + std::to_string(r));
    std::string text(v.begin(), v.end());
    const auto space = text.rfind(' ');
    Peer p;
    p.host = text.substr(0, space);
    p.pid = space == std::string::npos ? 0 : std::strtol(text.c_str() + space + 1, nullptr, 10);
    peers->push_back(p);
  }
  group->peers = std::move(peers);
  group_ = std::move(group);
  world_ = world;
}

std::unique_ptr<PendingCollective> Backend::all_reduce_async(const std::vector<torch::Tensor>& tensors) {
  if (!group_ || tensors.empty()) return std::make_unique<DoneCollective>();
  std::vector<torch::Tensor> list = tensors;
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  auto work = group_->gloo->allreduce(list, options);
  return std::make_unique<GlooPending>(std::move(work), std::move(list), "all-reduce", world_.rank, world_.size,
                                       group_->peers);
}

void Backend::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  if (!group_ || tensors.empty()) return;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> one{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    GlooPending(group_->gloo->broadcast(one, options), one, "broadcast", world_.rank, world_.size, group_->peers).wait();
  }
}

void Backend::barrier() {
  if (!group_) return;
  GlooPending(group_->gloo->barrier(), {}, "barrier", world_.rank, world_.size, group_->peers).wait();
}

}  // namespace hpt
