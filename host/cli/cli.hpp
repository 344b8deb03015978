// The hpt command line: run, validate, plugins, resume, export, average, bench.
// Exit codes: 0 success, 2 bad input (manifest, plugin, arguments), 1 failure while
// running, 128 + signal after SIGINT/SIGTERM (process/exit_codes.hpp).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "process/exit_codes.hpp"

namespace hpt::host {

// `args` without the program name, e.g. {"run", "m.toml", "optimizer.lr=3e-3"}.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hpt::host
