#include "distributed/launch_environment.hpp"

#include <cerrno>
#include <cstdlib>
#include <vector>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "hpt/error.hpp"

namespace hpt::host {

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// An integer variable in [low, high], or a problem appended to `problems`.
int int_var(const char* name, const char* text, long low, long high, std::vector<std::string>& problems) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || errno != 0 || value < low || value > high) {
    problems.push_back(std::string(name) + "='" + text + "' is not an integer in [" + std::to_string(low) + ", " +
                       std::to_string(high) + "]");
    return static_cast<int>(low);
  }
  return static_cast<int>(value);
}

}  // namespace

std::optional<LaunchEnvironment> read_launch_environment() {
  std::vector<std::string> problems;
  const char* world = env("WORLD_SIZE");
  const char* rank = env("RANK");
  if (!world) {
    if (rank && std::string(rank) != "0")
      throw BadInput("RANK=" + std::string(rank) +
                     " is set but WORLD_SIZE is not: launch with torchrun (or hpt run --nproc N), or unset RANK");
    return std::nullopt;
  }
  LaunchEnvironment e;
  e.world_size = int_var("WORLD_SIZE", world, 1, 1 << 20, problems);
  if (problems.empty() && e.world_size == 1) return std::nullopt;
  if (!rank) problems.push_back("RANK is not set");
  else e.rank = int_var("RANK", rank, 0, e.world_size - 1, problems);
  const char* local_rank = env("LOCAL_RANK");
  e.local_rank = local_rank ? int_var("LOCAL_RANK", local_rank, 0, 1 << 20, problems) : e.rank;
  const char* local_world = env("LOCAL_WORLD_SIZE");
  e.local_world_size = local_world ? int_var("LOCAL_WORLD_SIZE", local_world, 1, 1 << 20, problems) : e.world_size;
  const char* addr = env("MASTER_ADDR");
  if (!addr) problems.push_back("MASTER_ADDR is not set");
  else e.master_addr = addr;
  const char* port = env("MASTER_PORT");
  if (!port) problems.push_back("MASTER_PORT is not set");
  else e.master_port = int_var("MASTER_PORT", port, 1, 65535, problems);
  if (const char* restarts = env("TORCHELASTIC_RESTART_COUNT"))
    e.restart_count = int_var("TORCHELASTIC_RESTART_COUNT", restarts, 0, 1 << 20, problems);
  if (const char* agent = env("TORCHELASTIC_USE_AGENT_STORE")) e.agent_store = std::string(agent) == "True";
  if (!problems.empty()) {
    std::string text = "this process was launched as one rank of " + std::string(world) +
                       " (WORLD_SIZE) but its launch environment is incomplete:";
    for (const auto& p : problems) text += "\n  " + p;
    text += "\nlaunch with torchrun (it sets them all) or hpt run --nproc N";
    throw BadInput(text);
  }
  return e;
}

World connect_world(const LaunchEnvironment& launch, const DistributedSettings& settings) {
  World w;
  w.rank = launch.rank;
  w.size = launch.world_size;
  w.local_rank = launch.local_rank;
  w.kind = settings.backend;
  w.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(settings.timeout_seconds * 1000.0));
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(launch.master_port);
  options.isServer = !launch.agent_store && launch.rank == 0;
  options.numWorkers = static_cast<std::size_t>(launch.world_size);
  options.waitWorkers = false;  // the process group's own rendezvous waits for everyone
  options.timeout = w.timeout;
  options.multiTenant = !launch.agent_store;  // torchrun may host other stores on this port's machine
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
  } catch (const std::exception& e) {
    throw RunError("rank " + std::to_string(launch.rank) + " of " + std::to_string(launch.world_size) +
                   ": cannot reach the c10d store at " + launch.master_addr + ":" +
                   std::to_string(launch.master_port) + (options.isServer ? " (this rank hosts it)" : "") + ": " +
                   e.what());
  }
  // Keys of each restart attempt apart (torchrun's agent store lives across restarts),
  // and hpt's apart from anything else sharing the store.
  const std::string prefix = launch.agent_store ? "/worker/attempt_" + std::to_string(launch.restart_count) : "";
  if (!prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
  w.store = c10::make_intrusive<c10d::PrefixStore>("hpt", store);
  return w;
}

}  // namespace hpt::host
