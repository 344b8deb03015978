// SIGINT and SIGTERM as a request to stop: the handler only records the signal; the
// engine looks at it after each step, finishes cleanly and throws Interrupted.
#pragma once

#include <stdexcept>

namespace hpt::host {

// Thrown after a SIGINT or SIGTERM, once the work in hand finished cleanly. The CLI
// exits with 128 + signal (130 for SIGINT, 143 for SIGTERM).
struct Interrupted : std::runtime_error {
  // resumable: a checkpoint of the stop was written, so the work can go on from it.
  explicit Interrupted(int signal, bool resumable = true);
  int signal;
  bool resumable;
};

// Makes SIGINT and SIGTERM set the pending stop signal instead of ending the process.
void install_signal_handlers();

// The stop signal received since the last call (SIGINT or SIGTERM), or 0; clears it.
int take_stop_signal();

// "SIGINT", "SIGTERM" or "a signal".
const char* signal_name(int signal);

}  // namespace hpt::host
