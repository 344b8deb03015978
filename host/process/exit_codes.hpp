// The exit codes of every hpt command (docs/architecture.md, "Exit codes").
#pragma once

namespace hpt::host {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;   // failure while running (NaN loss, I/O error)
constexpr int kExitBadInput = 2;  // bad manifest, arguments, plugin or checkpoint
// After SIGINT or SIGTERM: 128 + the signal (130, 143).

}  // namespace hpt::host
