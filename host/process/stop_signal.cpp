#include "process/stop_signal.hpp"

#include <atomic>
#include <csignal>
#include <string>

namespace hpt::host {

namespace {
std::atomic<int> g_pending_signal{0};
extern "C" void on_stop_signal(int signal) { g_pending_signal.store(signal); }
}  // namespace

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

Interrupted::Interrupted(int sig, bool can_resume)
    : std::runtime_error(std::string("interrupted by ") + signal_name(sig)), signal(sig), resumable(can_resume) {}

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int take_stop_signal() { return g_pending_signal.exchange(0); }

}  // namespace hpt::host
