// Joining a launch the way torch.distributed's env:// rendezvous does: the launcher
// (torchrun, or `hpt run --nproc`) sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT in every process; the ranks meet through a c10d TCPStore
// at MASTER_ADDR:MASTER_PORT, hosted by rank 0, or by torchrun's agent when
// TORCHELASTIC_USE_AGENT_STORE says so (then under the prefix of the restart attempt,
// TORCHELASTIC_RESTART_COUNT, as PyTorch does).
#pragma once

#include <optional>
#include <string>

#include "config/distributed_settings.hpp"
#include "hpt/backend.hpp"

namespace hpt::host {

struct LaunchEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;
  int master_port = 0;
  int restart_count = 0;    // TORCHELASTIC_RESTART_COUNT: restarts of the group so far
  bool agent_store = false; // TORCHELASTIC_USE_AGENT_STORE=True: torchrun's agent hosts the store
};

// The launch this process is part of, or nullopt when WORLD_SIZE is unset or 1 (a
// single-process run, as without a launcher). Throws hpt::BadInput naming each variable
// that is missing or malformed.
std::optional<LaunchEnvironment> read_launch_environment();

// Connects to the store (rank 0 hosts it unless the agent does) and returns the world to
// join. Throws hpt::RunError when the store cannot be reached within the timeout.
World connect_world(const LaunchEnvironment& launch, const DistributedSettings& settings);

}  // namespace hpt::host
