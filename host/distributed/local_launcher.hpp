// `hpt run --nproc N`: starts N ranks of one local data-parallel run without torchrun,
// with the environment torchrun would give them (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT a free port).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace hpt::host {

// Runs this executable N times with `args` (its command line without --nproc) and waits.
// A rank that fails stops the others (SIGTERM, then SIGKILL after `grace_seconds`); a
// SIGINT or SIGTERM to the launcher is passed on to every rank. Returns the first
// non-zero exit code of a rank (128 + signal for a rank killed by a signal), else 0.
int run_local_ranks(int nproc, const std::vector<std::string>& args, std::ostream& err, int grace_seconds = 30);

}  // namespace hpt::host
