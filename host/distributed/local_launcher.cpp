#include "distributed/local_launcher.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "hpt/error.hpp"
#include "process/stop_signal.hpp"

namespace hpt::host {

namespace {

// A TCP port that was free a moment ago on the loopback interface (the kernel's choice).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw RunError("hpt run --nproc: cannot open a socket to find a free port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw RunError("hpt run --nproc: cannot find a free port on 127.0.0.1");
  }
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string self_executable() {
  std::vector<char> buf(4096);
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) throw RunError("hpt run --nproc: cannot find this executable (/proc/self/exe)");
  return std::string(buf.data(), static_cast<std::size_t>(n));
}

pid_t start_rank(const std::string& exe, const std::vector<std::string>& args, int rank, int nproc, int port) {
  pid_t pid = ::fork();
  if (pid < 0) throw RunError("hpt run --nproc: fork failed");
  if (pid != 0) return pid;
  const std::string r = std::to_string(rank), n = std::to_string(nproc), p = std::to_string(port);
  ::setenv("RANK", r.c_str(), 1);
  ::setenv("LOCAL_RANK", r.c_str(), 1);
  ::setenv("WORLD_SIZE", n.c_str(), 1);
  ::setenv("LOCAL_WORLD_SIZE", n.c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", p.c_str(), 1);
  ::unsetenv("TORCHELASTIC_USE_AGENT_STORE");
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  std::string program = exe;
  argv.push_back(program.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(exe.c_str(), argv.data());
  _exit(127);
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

int run_local_ranks(int nproc, const std::vector<std::string>& args, std::ostream& err, int grace_seconds) {
  if (nproc < 1) throw BadInput("--nproc must be at least 1, got " + std::to_string(nproc));
  const std::string exe = self_executable();
  const int port = free_port();
  install_signal_handlers();
  std::vector<pid_t> ranks;
  for (int r = 0; r < nproc; ++r) ranks.push_back(start_rank(exe, args, r, nproc, port));

  int first_failure = 0;
  int running = nproc;
  bool stopping = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    if (int signal = take_stop_signal(); signal != 0) {
      for (pid_t pid : ranks)
        if (pid > 0) ::kill(pid, signal);  // each rank finishes its step and writes its stop
    }
    int status = 0;
    pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (std::size_t r = 0; r < ranks.size(); ++r) {
        if (ranks[r] != done) continue;
        ranks[r] = -1;
        --running;
        const int code = exit_code(status);
        if (code != 0 && first_failure == 0) {
          first_failure = code;
          err << "hpt run --nproc: rank " << r << " exited with " << code << "; stopping the other ranks\n";
        }
      }
      if (first_failure != 0 && !stopping) {
        stopping = true;
        for (pid_t pid : ranks)
          if (pid > 0) ::kill(pid, SIGTERM);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
      }
      continue;
    }
    if (stopping && std::chrono::steady_clock::now() > deadline) {
      for (pid_t pid : ranks)
        if (pid > 0) ::kill(pid, SIGKILL);
      deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return first_failure;
}

}  // namespace hpt::host
