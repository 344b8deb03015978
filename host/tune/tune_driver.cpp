#include "tune/tune_driver.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "hpt/error.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_driver = 0;  // the running driver, 0 when none

extern "C" void forward_to_driver(int signal) {
  if (g_driver > 0) ::kill(static_cast<pid_t>(g_driver), signal);
}

}  // namespace

std::string tune_driver_path() {
  std::error_code ec;
  const fs::path exe = fs::canonical("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) candidates.push_back((exe.parent_path() / HPT_TUNE_DRIVER_FROM_BIN).lexically_normal());
  candidates.push_back(HPT_SOURCE_TUNE_DRIVER);
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return c.string();
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c.string();
  throw BadInput("cannot find the tune driver hpt_tune.py (looked for " + tried + ")");
}

std::string tune_python() {
  const char* env = std::getenv("HPT_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

int run_tune_driver(const std::string& spec_json, const std::vector<std::string>& args) {
  const std::string python = tune_python(), driver = tune_driver_path();
  std::vector<std::string> all = {python, driver, spec_json};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  struct sigaction forward {}, old_int {}, old_term {};
  forward.sa_handler = forward_to_driver;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGINT, &forward, &old_int);
  sigaction(SIGTERM, &forward, &old_term);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    throw RunError(std::string("cannot start the tune driver: fork failed: ") + std::strerror(err));
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec; the default dispositions again for python.
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::execv(python.c_str(), argv.data());
    const char* msg = "hpt tune: cannot execute the tune driver's python (set HPT_PYTHON, or install python3)\n";
    [[maybe_unused]] auto n = ::write(2, msg, std::strlen(msg));
    ::_exit(127);
  }
  g_driver = pid;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  g_driver = 0;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace hpt::host
