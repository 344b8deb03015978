// [distributed]: how the ranks of a data-parallel run talk (the ranks themselves come
// from the launcher's environment, host/distributed/launch_environment.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hpt/options.hpp"

namespace hpt::host {

struct DistributedSettings {
  std::string backend = "auto";   // gloo, nccl, or auto: the Backend plugin's choice for its device
  double timeout_seconds = 300;   // a collective that waits longer fails, naming the rank
  double bucket_mb = 25;          // gradient all-reduce buckets, as PyTorch DDP's bucket_cap_mb
  bool check_sync = false;        // compare the parameters of every rank every check_every steps
  std::int64_t check_every = 100;

  static std::vector<OptionSpec> option_specs();
  static DistributedSettings from(const Options& options);
};

}  // namespace hpt::host
