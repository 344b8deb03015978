#include "bench/bench_runner.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>

#include <boost/json.hpp>

#include "bench/run_progress.hpp"
#include "process/stop_signal.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kPollEvery = std::chrono::milliseconds(200);  // how often the running run is looked at
constexpr double kPlainLineEvery = 5.0;                      // seconds between plain progress lines

volatile std::sig_atomic_t g_child = 0;   // the running `hpt run`, 0 between runs
volatile std::sig_atomic_t g_signal = 0;  // SIGINT or SIGTERM received by the suite

extern "C" void forward_stop_signal(int signal) {
  g_signal = signal;
  if (g_child > 0) ::kill(static_cast<pid_t>(g_child), signal);
}

// Passes SIGINT and SIGTERM on to the running child for as long as it lives.
class SignalForwarding {
 public:
  SignalForwarding() {
    struct sigaction action {};
    action.sa_handler = forward_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
    g_signal = 0;
  }
  ~SignalForwarding() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string sibling_log(const PlannedRun& run) { return run.run_dir + ".log"; }

// Runs `exe args...` with stdout and stderr to `log`, calling `tick` every kPollEvery
// while it runs; returns its exit code (128 + signal when a signal ended it).
int run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& log,
                const std::function<void()>& tick) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw RunError("cannot write " + log + ": " + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fd);
    throw RunError(std::string("cannot start hpt run: fork failed: ") + std::strerror(err));
  }
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(exe.c_str(), argv.data());
    const char* msg = "hpt bench: cannot execute the hpt executable\n";
    [[maybe_unused]] auto n = ::write(2, msg, std::strlen(msg));
    ::_exit(127);
  }
  ::close(fd);
  g_child = pid;
  int status = 0;
  while (true) {
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    tick();
    std::this_thread::sleep_for(kPollEvery);
  }
  g_child = 0;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

// "target_reached at step 2400 after 8.1 s of training" from the run's summary.json.
std::string result_text(const PlannedRun& run) {
  std::error_code ec;
  auto text = read_text(fs::path(run.run_dir) / "summary.json");
  auto parsed = boost::json::parse(text, ec);
  if (ec || !parsed.is_object()) return "no summary.json";
  const auto& o = parsed.as_object();
  std::ostringstream os;
  os << std::setprecision(3);
  if (auto* s = o.if_contains("status"); s && s->is_string()) os << s->as_string().c_str();
  if (auto* st = o.if_contains("steps"); st && st->is_int64()) os << " at step " << st->as_int64();
  if (auto* t = o.if_contains("train_seconds"); t && t->is_number()) os << " after " << t->to_number<double>() << " s of training";
  return os.str();
}

// The console's view of the running run: its progress line, redrawn in place on a
// terminal (cut to the terminal's width, so that the carriage return goes back to its
// start), or printed as a plain line every kPlainLineEvery seconds otherwise.
class LiveLine {
 public:
  LiveLine(std::ostream& out, bool terminal, std::string head, const PlannedRun& run)
      : out_(out),
        terminal_(terminal),
        head_(std::move(head)),
        progress_((fs::path(run.run_dir) / "metrics.jsonl").string(), run.resolved.run.max_steps, run.resolved.run.target) {}

  void tick() {
    bool fresh = progress_.poll();
    if (!progress_.started()) return;
    auto now = Clock::now();
    if (terminal_) {
      // Redrawn when something new came, and every second for the ETA.
      if (!fresh && now - last_ < std::chrono::seconds(1)) return;
      last_ = now;
      std::string text = head_ + "running  " + progress_.line(true);
      std::size_t width = terminal_width();
      if (text.size() >= width) text.resize(width - 1);
      out_ << "\r" << text << "\x1b[K" << std::flush;
    } else if (fresh && std::chrono::duration<double>(now - last_).count() >= kPlainLineEvery) {
      print_plain(true);
    }
  }

  // The run ended: on a terminal the line is cleared for the result; otherwise the last
  // state is printed, unless the last plain line already showed it.
  void finish() {
    progress_.poll();
    if (terminal_) {
      out_ << "\r\x1b[K" << std::flush;  // the run's result line takes its place
      return;
    }
    if (progress_.started() && (progress_.step() != printed_step_ || progress_.evals() != printed_evals_))
      print_plain(false);
  }

 private:
  void print_plain(bool with_eta) {
    last_ = Clock::now();
    printed_step_ = progress_.step();
    printed_evals_ = progress_.evals();
    out_ << head_ << progress_.line(with_eta) << "\n" << std::flush;
  }

  static std::size_t terminal_width() {
    struct winsize w {};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
    return 80;
  }

  std::ostream& out_;
  bool terminal_;
  std::string head_;
  RunProgress progress_;
  Clock::time_point last_ = Clock::now();
  std::int64_t printed_step_ = -1;
  std::size_t printed_evals_ = 0;
};

}  // namespace

bool run_complete(const PlannedRun& run) {
  fs::path dir(run.run_dir);
  std::error_code ec;
  auto parsed = boost::json::parse(read_text(dir / "summary.json"), ec);
  if (ec || !parsed.is_object()) return false;
  const auto* status = parsed.as_object().if_contains("status");
  if (status == nullptr || !status->is_string()) return false;
  const auto& s = status->as_string();
  if (s != "completed" && s != "target_reached" && s != "early_stopped") return false;
  return read_text(dir / "config.resolved.toml") == run.resolved.to_toml();
}

std::string run_log_path(const PlannedRun& run) {
  fs::path inside = fs::path(run.run_dir) / "output.log";
  return fs::exists(inside) ? inside.string() : sibling_log(run);
}

std::vector<RunOutcome> run_suite(const BenchManifest& bench, const std::vector<PlannedRun>& runs,
                                  const std::string& hpt_exe, std::ostream& out, bool terminal) {
  std::vector<bool> complete;
  std::size_t to_run = 0;
  for (const auto& r : runs) {
    complete.push_back(run_complete(r));
    to_run += complete.back() ? 0 : 1;
  }
  out << "bench " << bench.name << ": " << runs.size() << " runs (" << bench.variants.size() << " variants x "
      << bench.seeds.size() << " seeds), " << runs.size() - to_run << " already complete, " << to_run
      << " to run; results in " << bench.runs_dir << "\n"
      << std::flush;
  fs::create_directories(fs::path(bench.runs_dir) / "runs");

  SignalForwarding forwarding;
  std::vector<RunOutcome> outcomes;
  double spent = 0.0;
  std::size_t done = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const PlannedRun& run = runs[i];
    RunOutcome o;
    o.name = run.name;
    std::string head = "[" + std::to_string(i + 1) + "/" + std::to_string(runs.size()) + "] " + run.name + ": ";
    if (complete[i]) {
      o.skipped = true;
      out << head << "complete, skipped\n" << std::flush;
      outcomes.push_back(o);
      continue;
    }
    out << head << "running" << (terminal ? "" : "\n") << std::flush;
    std::vector<std::string> args = {"run", bench.base};
    args.insert(args.end(), run.overrides.begin(), run.overrides.end());
    args.push_back("--overwrite");
    args.push_back("--no-progress");
    std::string log = sibling_log(run);
    // The run replaces its directory (--overwrite); its stale metrics.jsonl goes now, so
    // that the progress line follows only the new run's.
    std::error_code stale;
    fs::remove(fs::path(run.run_dir) / "metrics.jsonl", stale);
    LiveLine live(out, terminal, head, run);
    auto t0 = Clock::now();
    o.exit_code = run_process(hpt_exe, args, log, [&live] { live.tick(); });
    o.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    live.finish();
    if (fs::is_directory(run.run_dir)) {
      std::error_code ec;
      fs::rename(log, fs::path(run.run_dir) / "output.log", ec);
    }
    spent += o.wall_seconds;
    ++done;
    outcomes.push_back(o);
    if (g_signal != 0) {
      out << head << "interrupted; run the same `hpt bench` again to resume the suite\n" << std::flush;
      throw Interrupted(g_signal);
    }
    std::ostringstream line;
    if (o.exit_code == 0 && run_complete(run))
      line << head << result_text(run) << " (" << duration_text(o.wall_seconds) << " in all)";
    else
      line << head << "FAILED with exit code " << o.exit_code << "; see " << run_log_path(run);
    if (done < to_run)
      line << "; ETA " << duration_text(spent / static_cast<double>(done) * static_cast<double>(to_run - done))
           << " for " << to_run - done << " more";
    out << line.str() << "\n" << std::flush;
  }
  return outcomes;
}

}  // namespace hpt::host
