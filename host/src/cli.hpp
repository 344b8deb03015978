// The hpt command line: run, validate, plugins, resume. Exit codes: 0 success,
// 2 bad input (manifest, plugin, arguments), 1 failure while running.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace hpt::host {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;

// `args` without the program name, e.g. {"run", "m.toml", "optimizer.lr=3e-3"}.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace hpt::host
