// Helpers shared by the tests: temporary directories, manifests, running the hpt CLI.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/cli.hpp"
#include "engine/engine.hpp"
#include "plugins/plugin_loader.hpp"

namespace hpt::test {

// A fresh directory under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    auto base = std::filesystem::temp_directory_path() / "hpt-test";
    std::filesystem::create_directories(base);
    std::string tmpl = (base / "XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

// Runs `hpt ARGS...` in this process.
inline CliResult run_hpt(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = host::run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Option values by name, for make_plugin.
using Overrides = std::map<std::string, OptionValue>;

// The loader over build/plugins, shared by a test executable.
inline host::PluginLoader& built_plugins() {
  static host::PluginLoader loader({std::string(HPT_BINARY_DIR) + "/plugins"});
  return loader;
}

// Creates built plugin (kind, name) with its defaults and `overrides`, which must be
// declared options.
template <class Interface>
std::shared_ptr<Interface> make_plugin(PluginKind kind, const std::string& name, const Overrides& overrides = {},
                                       std::uint64_t seed = 0) {
  auto info = built_plugins().find(kind, name);
  Options options = Options::defaults(info->options);
  for (const auto& [key, value] : overrides) {
    EXPECT_TRUE(options.has(key)) << name << " declares no option '" << key << "'";
    options.set(key, value);
  }
  PluginContext context;
  context.seed = seed;
  return built_plugins().create<Interface>(*info, context, options);
}

// Starts `hpt ARGS` as a child process in a process group of its own (with every
// process it starts: `hpt run --nproc` ranks), its output appended to `log`, `env` added
// to its environment. With `file_size_limit` no file it writes can grow past that many
// bytes (RLIMIT_FSIZE): a write beyond fails with EFBIG, as one on a full disk fails with ENOSPC.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log, rlim_t file_size_limit = RLIM_INFINITY,
                   const std::vector<std::pair<std::string, std::string>>& env = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    if (file_size_limit != RLIM_INFINITY) {
      struct rlimit limit {file_size_limit, file_size_limit};
      setrlimit(RLIMIT_FSIZE, &limit);
      signal(SIGXFSZ, SIG_IGN);  // the write fails instead of killing the process
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    FILE* f = std::fopen(log.c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    std::string exe = HPT_EXE;
    argv.push_back(exe.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also here: no race with the child's own call
  return pid;
}

// The exit code of `pid` (128 + signal when a signal ended it). A process still running
// after `timeout_seconds` is killed with its whole process group, and the test fails.
inline int wait_exit(pid_t pid, int timeout_seconds = 600) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "process " << pid << " still running after " << timeout_seconds << " s: killed";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline int run_to_end(const std::vector<std::string>& args, const std::string& log, int timeout_seconds = 600) {
  return wait_exit(spawn(args, log), timeout_seconds);
}

// An engine over a manifest given as text ("test.toml"), with `overrides`; a run directory
// under `runs_dir` when one is given, none otherwise; no progress bar.
struct BuiltEngine {
  std::unique_ptr<host::PluginLoader> loader;
  std::unique_ptr<host::Engine> engine;
};

inline BuiltEngine build_engine(const std::string& text, const std::vector<std::string>& overrides,
                                const std::string& runs_dir = "") {
  std::vector<std::string> all = overrides;
  if (!runs_dir.empty()) all.push_back("run.runs_dir=\"" + runs_dir + "\"");
  host::Manifest m = host::Manifest::parse(text, "test.toml", all);
  BuiltEngine b;
  b.loader = std::make_unique<host::PluginLoader>(host::PluginLoader::default_dirs(host::plugin_dirs_of(m)));
  host::EngineOptions options;
  options.write_run_dir = !runs_dir.empty();
  options.progress = 0;
  b.engine = std::make_unique<host::Engine>(host::resolve(m, *b.loader), *b.loader, options);
  return b;
}

}  // namespace hpt::test
