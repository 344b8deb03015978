// Data-parallel runs on c10d's Gloo process group, as separate processes on this machine:
// `hpt run --nproc 2`, ranks started by hand with torchrun's environment, and torchrun
// itself where Debian's python3-torch is installed. Every child runs in a process group
// of its own, killed whole when it outlives its time limit.
#include <filesystem>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "checkpoint/checkpoint_tools.hpp"
#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_to_end;
using hpt::test::spawn;
using hpt::test::TempDir;
using hpt::test::wait_exit;
using ::testing::HasSubstr;

namespace {

constexpr int kLimit = 300;  // seconds any one launch may take

// The synthetic task, SGD, a checkpoint at the end; `batch` rows per rank.
std::string manifest(const std::string& runs_dir, const std::string& name, int batch, int steps = 50) {
  return "[run]\nname = \"" + name + "\"\nseed = 4\nmax_steps = " + std::to_string(steps) +
         "\neval_every = 25\nruns_dir = \"" + runs_dir + "\"\n[task]\nplugin = \"synthetic\"\nsamples = 1024\n" +
         "batch_size = " + std::to_string(batch) + "\n[optimizer]\nplugin = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n" +
         "[backend]\nthreads = 1\n[checkpointer]\nplugin = \"torch\"\nevery_steps = 25\n";
}

std::vector<std::pair<std::string, torch::Tensor>> final_weights(const std::string& run_dir) {
  return hpt::host::read_model_tensors(read_file(run_dir + "/checkpoints/latest/model.pt"), run_dir);
}

boost::json::object summary_of(const std::string& run_dir) {
  return boost::json::parse(read_file(run_dir + "/summary.json")).as_object();
}

const std::vector<std::string> kHybrid = {
    "dynamics.plugin=\"linear\"", "dynamics.min_observations=10", "correction.plugin=\"residual\"",
    "phase.plugin=\"adaptive\"",  "phase.warmup_steps=10",        "phase.confidence_threshold=0.0",
    "phase.min_horizon=2",          "phase.initial_horizon=4"};

// What torchrun gives rank `rank` of two on this machine, the store at `port`.
std::vector<std::pair<std::string, std::string>> rank_environment(int rank, const std::string& port) {
  return {{"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(rank)}, {"WORLD_SIZE", "2"},
          {"LOCAL_WORLD_SIZE", "2"},      {"MASTER_ADDR", "127.0.0.1"},          {"MASTER_PORT", port}};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

}  // namespace

TEST(Distributed, TwoRanksOfBatch64EqualOneRankOfBatch128) {
  TempDir dir;
  std::string one = dir.write("one.toml", manifest(dir.path(), "one", 128));
  std::string two = dir.write("two.toml", manifest(dir.path(), "two", 64));
  ASSERT_EQ(run_to_end({"run", one, "--no-progress"}, dir.path() + "/one.log", kLimit), 0)
      << read_file(dir.path() + "/one.log");
  ASSERT_EQ(run_to_end({"run", two, "--nproc", "2", "--no-progress"}, dir.path() + "/two.log", kLimit), 0)
      << read_file(dir.path() + "/two.log");
  auto a = final_weights(dir.path() + "/one"), b = final_weights(dir.path() + "/two");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  // The same rows in each step; only the order of the float additions differs (the mean
  // of two means of 64 against one mean of 128), so the weights agree to float rounding.
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i].second, b[i].second, 1e-4, 1e-5))
        << a[i].first << ": max difference " << (a[i].second - b[i].second).abs().max().item<double>();
  EXPECT_EQ(summary_of(dir.path() + "/two").at("steps").as_int64(), 50);
  EXPECT_EQ(summary_of(dir.path() + "/two").at("world_size").as_int64(), 2);
  EXPECT_THAT(read_file(dir.path() + "/two/config.resolved.toml"),
              HasSubstr("# Data parallel: 2 ranks. task.batch_size is per rank: the global batch is 64 x 2 = 128."));
  // One summary, one line per step: rank 0 alone writes.
  const std::string log = read_file(dir.path() + "/two.log");
  EXPECT_EQ(log.find("run two:"), log.rfind("run two:"));
}

TEST(Distributed, TwoRankRunsAreBitIdenticalRunAfterRun) {
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "r", 64, 30));
  for (const char* runs : {"/a", "/b"}) {
    const std::string override = std::string("run.runs_dir=\"") + dir.path() + runs + "\"";
    ASSERT_EQ(run_to_end({"run", m, override, "--nproc", "2", "--no-progress"}, dir.path() + "/log", kLimit), 0)
        << read_file(dir.path() + "/log");
  }
  auto a = final_weights(dir.path() + "/a/r"), b = final_weights(dir.path() + "/b/r");
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
}

TEST(Distributed, AveragingAndLookaheadKeepRanksAlikeAndEveryRankStopsAtATargetOnTheAverage) {
  // Rank 0 evaluates the averaged weights; every rank gets the avg.* metrics, so all stop at
  // the first evaluation (the target is reached at once); check_sync compares the ranks'
  // parameters after Lookahead's synchronisations.
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "r", 64) +
                                          "[averaging]\ndecay = 0.9\n[lookahead]\nk = 3\n"
                                          "[distributed]\ncheck_sync = true\ncheck_every = 5\n");
  ASSERT_EQ(run_to_end({"run", m, "run.target={metric=\"avg.val_loss\", value=1e9}", "--nproc", "2", "--no-progress"},
                       dir.path() + "/log", kLimit),
            0)
      << read_file(dir.path() + "/log");
  auto summary = summary_of(dir.path() + "/r");
  EXPECT_EQ(summary.at("status").as_string(), "target_reached");
  EXPECT_EQ(summary.at("steps").as_int64(), 25);
  EXPECT_TRUE(summary.at("final_metrics").as_object().contains("avg.val_loss"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/r/final_averaged_weights.pt"));
}

TEST(Distributed, HybridRanksStayIdenticalThroughPredictedSteps) {
  // check_sync compares the ranks' parameters every 5 step-equivalents and at the end; a
  // difference fails the run.
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "h", 64, 120));
  auto args = with({"run", m, "distributed.check_sync=true", "distributed.check_every=5", "--nproc", "2",
                    "--no-progress", "run.log_level=\"debug\""},
                   kHybrid);
  ASSERT_EQ(run_to_end(args, dir.path() + "/log", kLimit), 0) << read_file(dir.path() + "/log");
  auto s = summary_of(dir.path() + "/h");
  EXPECT_GT(s.at("predicted_steps").as_int64(), 0);
  EXPECT_THAT(read_file(dir.path() + "/h/hpt.log"), HasSubstr("parameters identical on all 2 ranks"));
}

TEST(Distributed, StopAndResumeOnTwoRanksEqualsTheUninterruptedRun) {
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path() + "/a", "r", 64, 50));
  ASSERT_EQ(run_to_end({"run", m, "--nproc", "2", "--no-progress"}, dir.path() + "/a.log", kLimit), 0)
      << read_file(dir.path() + "/a.log");
  const std::string b = "run.runs_dir=\"" + dir.path() + "/b\"";
  ASSERT_EQ(run_to_end({"run", m, b, "run.max_steps=25", "--nproc", "2", "--no-progress"}, dir.path() + "/b.log",
                       kLimit),
            0)
      << read_file(dir.path() + "/b.log");
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/b/r", "run.max_steps=50", "--nproc", "2", "--no-progress"},
                       dir.path() + "/b.log", kLimit),
            0)
      << read_file(dir.path() + "/b.log");
  auto x = final_weights(dir.path() + "/a/r"), y = final_weights(dir.path() + "/b/r");
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(torch::equal(x[i].second, y[i].second)) << x[i].first;
}

TEST(Distributed, SigtermStopsEveryRankAtOneStepAndResumeContinuesBitForBit) {
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path() + "/a", "r", 64, 3000));
  auto args = [](std::vector<std::string> a) {
    a.insert(a.end(), {"checkpointer.every_steps=1000", "run.eval_every=0", "--nproc", "2", "--no-progress"});
    return a;
  };
  ASSERT_EQ(run_to_end(args({"run", m}), dir.path() + "/a.log", kLimit), 0) << read_file(dir.path() + "/a.log");
  // The launcher passes SIGTERM on to both ranks; they stop after the same step, rank 0
  // writes a final checkpoint there, and the resume ends where the uninterrupted run did.
  const std::string b = "run.runs_dir=\"" + dir.path() + "/b\"";
  pid_t launcher = spawn(args({"run", m, b}), dir.path() + "/b.log");
  const std::string metrics = dir.path() + "/b/r/metrics.jsonl";
  for (int i = 0; i < 3000 && read_file(metrics).find("\"step\":300,") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(launcher, SIGTERM);
  EXPECT_EQ(wait_exit(launcher, kLimit), 128 + SIGTERM) << read_file(dir.path() + "/b.log");
  const auto stopped = summary_of(dir.path() + "/b/r");
  EXPECT_EQ(stopped.at("status").as_string(), "interrupted");
  EXPECT_LT(stopped.at("steps").as_int64(), 3000);
  ASSERT_EQ(run_to_end({"resume", dir.path() + "/b/r", "--nproc", "2", "--no-progress"}, dir.path() + "/b.log", kLimit),
            0)
      << read_file(dir.path() + "/b.log");
  auto x = final_weights(dir.path() + "/a/r"), y = final_weights(dir.path() + "/b/r");
  ASSERT_EQ(x.size(), y.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(torch::equal(x[i].second, y[i].second)) << x[i].first;
}

TEST(Distributed, AKilledRankEndsTheOtherWithAClearErrorWithinTheTimeout) {
  // Two ranks started by hand, as torchrun would; rank 1 SIGKILLs itself in its 30th batch.
  TempDir dir;
  const std::string m = dir.write(
      "m.toml", "[run]\nname = \"k\"\nmax_steps = 200\neval_every = 0\nruns_dir = \"" + dir.path() +
                    "\"\nplugin_dirs = [\"" + HPT_TEST_PLUGIN_DIR + "/engine\"]\n[task]\nplugin = \"counting\"\n"
                    "kill_at_batch = 30\nkill_rank = 1\n[optimizer]\nplugin = \"sgd\"\nlr = 0.05\n"
                    "[checkpointer]\nplugin = \"torch\"\nevery_steps = 10\n[distributed]\ntimeout = 20\n");
  const std::string port = std::to_string(29500 + (getpid() % 2000));
  auto env = [&](int rank) { return rank_environment(rank, port); };
  const auto start = std::chrono::steady_clock::now();
  pid_t r0 = spawn({"run", m, "--no-progress"}, dir.path() + "/r0.log", RLIM_INFINITY, env(0));
  pid_t r1 = spawn({"run", m, "--no-progress"}, dir.path() + "/r1.log", RLIM_INFINITY, env(1));
  const int code1 = wait_exit(r1, kLimit);
  const int code0 = wait_exit(r0, kLimit);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(code1, 128 + SIGKILL);
  EXPECT_NE(code0, 0);
  EXPECT_LT(seconds, 120.0);
  const std::string log0 = read_file(dir.path() + "/r0.log");
  EXPECT_THAT(log0, HasSubstr("rank 0 of 2"));
  EXPECT_THAT(log0, HasSubstr("failed (another rank died, hangs or left the group)"));
  EXPECT_THAT(log0, HasSubstr("rank 1 (pid " + std::to_string(r1) + ") has exited"));
  // The checkpoints rank 0 wrote before are whole.
  auto w = final_weights(dir.path() + "/k");
  EXPECT_FALSE(w.empty());
  EXPECT_THAT(read_file(dir.path() + "/k/summary.json"), HasSubstr("\"status\":\"failed\""));
}

TEST(Distributed, AHungRankMakesTheOtherFailWithinTheTimeoutNamingIt) {
  // Rank 1 is stopped (SIGSTOP) mid-run: rank 0 waits for it no longer than
  // [distributed] timeout, then fails saying which rank is stopped.
  TempDir dir;
  const std::string m = dir.write("m.toml", manifest(dir.path(), "hang", 64, 100000) + "[distributed]\ntimeout = 5\n");
  const std::string port = std::to_string(31500 + (getpid() % 2000));
  auto env = [&](int rank) { return rank_environment(rank, port); };
  pid_t r0 = spawn({"run", m, "--no-progress"}, dir.path() + "/r0.log", RLIM_INFINITY, env(0));
  pid_t r1 = spawn({"run", m, "--no-progress"}, dir.path() + "/r1.log", RLIM_INFINITY, env(1));
  const std::string metrics = dir.path() + "/hang/metrics.jsonl";
  for (int i = 0; i < 3000 && read_file(metrics).find("\"step\":200,") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(r1, SIGSTOP);
  const auto stopped_at = std::chrono::steady_clock::now();
  const int code0 = wait_exit(r0, kLimit);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  kill(-r1, SIGKILL);
  wait_exit(r1, kLimit);
  EXPECT_EQ(code0, 1);
  EXPECT_GE(waited, 4.0);
  EXPECT_LT(waited, 60.0);
  EXPECT_THAT(read_file(dir.path() + "/r0.log"), HasSubstr("rank 1 (pid " + std::to_string(r1) + ") is stopped"));
}

TEST(Distributed, RanksUseTheAgentStoreWhenTorchrunSaysSo) {
  // This test plays torchrun's agent: it hosts the TCPStore, and the ranks, told
  // TORCHELASTIC_USE_AGENT_STORE=True, meet in it under the attempt's prefix.
  TempDir dir;
  c10d::TCPStoreOptions options;
  options.port = 0;  // any free port
  options.isServer = true;
  options.waitWorkers = false;
  c10d::TCPStore agent("127.0.0.1", options);
  const std::string port = std::to_string(agent.getPort());
  const std::string m = dir.write("m.toml", manifest(dir.path(), "agent", 64, 20));
  auto env = [&](int rank) {
    auto e = rank_environment(rank, port);
    e.insert(e.end(), {{"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "3"}});
    return e;
  };
  pid_t r0 = spawn({"run", m, "--no-progress"}, dir.path() + "/r0.log", RLIM_INFINITY, env(0));
  pid_t r1 = spawn({"run", m, "--no-progress"}, dir.path() + "/r1.log", RLIM_INFINITY, env(1));
  EXPECT_EQ(wait_exit(r0, kLimit), 0) << read_file(dir.path() + "/r0.log");
  EXPECT_EQ(wait_exit(r1, kLimit), 0) << read_file(dir.path() + "/r1.log");
  EXPECT_TRUE(agent.check({"/worker/attempt_3/hpt/peer/0", "/worker/attempt_3/hpt/peer/1"}));
  // A restart count above 0 means torchrun restarted the group: the run resumes.
  EXPECT_THAT(read_file(dir.path() + "/r0.log"), HasSubstr("restart 3 of the group: resuming from the latest checkpoint"));
  EXPECT_EQ(summary_of(dir.path() + "/agent").at("steps").as_int64(), 20);
}

TEST(Distributed, BadSectionAndIncompleteLaunchAreRefusedWithExitTwo) {
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "bad", 64) + "[distributed]\nbackend = \"mpi\"\n");
  auto r = hpt::test::run_hpt({"validate", m});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("'distributed.backend' must be one of auto, gloo, nccl, got \"mpi\""));

  std::string ok = dir.write("ok.toml", manifest(dir.path(), "ok", 64));
  pid_t p = spawn({"run", ok, "--no-progress"}, dir.path() + "/env.log", RLIM_INFINITY, {{"WORLD_SIZE", "2"}});
  EXPECT_EQ(wait_exit(p, kLimit), 2);
  const std::string log = read_file(dir.path() + "/env.log");
  EXPECT_THAT(log, HasSubstr("launched as one rank of 2 (WORLD_SIZE) but its launch environment is incomplete"));
  EXPECT_THAT(log, HasSubstr("RANK is not set"));
  EXPECT_THAT(log, HasSubstr("MASTER_ADDR is not set"));
}

// torchrun with its arguments for Debian's 1.13 on Python 3.11, in a process group of its own.
pid_t torchrun(const std::vector<std::string>& args, const std::string& log) {
  // Not --standalone: Debian's torchrun 1.13 then puts its rendezvous store on port 29400
  // every time, and two torchrun tests at once (ctest -j2), or one right after another,
  // failed with "Address already in use". Each test process gets its own port.
  const std::string endpoint = "--rdzv_endpoint=localhost:" + std::to_string(33500 + (getpid() % 2000));
  const std::string id = "--rdzv_id=hpt-test-" + std::to_string(getpid());
  pid_t p = fork();
  if (p == 0) {
    setpgid(0, 0);
    FILE* f = std::fopen(log.c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<std::string> all = {"torchrun", "--nnodes=1", "--rdzv_backend=c10d", endpoint, id,
                                    "--nproc_per_node=2", "-r", "1", "-t", "1"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv("/usr/bin/torchrun", argv.data());
    _exit(127);
  }
  setpgid(p, p);
  return p;
}

TEST(Distributed, TorchrunLaunchesTwoRanks) {
  // Debian's torchrun (python3-torch 1.13) on Python 3.11 needs -r 1 -t 1: without them it
  // fails at start ('NoneType' object has no attribute 'get'), as Std.NONE no longer
  // iterates there.
  if (!std::filesystem::exists("/usr/bin/torchrun")) GTEST_SKIP() << "/usr/bin/torchrun is not installed (python3-torch)";
  TempDir dir;
  std::string m = dir.write("m.toml", manifest(dir.path(), "t", 64, 30));
  pid_t p = torchrun({"--no_python", HPT_EXE, "run", m, "--no-progress"}, dir.path() + "/t.log");
  ASSERT_EQ(wait_exit(p, kLimit), 0) << read_file(dir.path() + "/t.log");
  auto s = summary_of(dir.path() + "/t");
  EXPECT_EQ(s.at("status").as_string(), "completed");
  EXPECT_EQ(s.at("steps").as_int64(), 30);
}

TEST(Distributed, TorchrunRestartsTheGroupAfterAKilledRankAndTheRunResumes) {
  if (!std::filesystem::exists("/usr/bin/torchrun")) GTEST_SKIP() << "/usr/bin/torchrun is not installed (python3-torch)";
  TempDir dir;
  const std::string m = dir.write(
      "m.toml", "[run]\nname = \"k\"\nmax_steps = 200\neval_every = 0\nruns_dir = \"" + dir.path() +
                    "\"\nplugin_dirs = [\"" + HPT_TEST_PLUGIN_DIR + "/engine\"]\n[task]\nplugin = \"counting\"\n"
                    "kill_at_batch = 30\nkill_rank = 1\nkill_attempt = 0\n[optimizer]\nplugin = \"sgd\"\nlr = 0.05\n"
                    "[checkpointer]\nplugin = \"torch\"\nevery_steps = 10\n[distributed]\ntimeout = 30\n");
  pid_t p = torchrun({"--max_restarts=1", "--no_python", HPT_EXE, "run", m, "--no-progress"}, dir.path() + "/t.log");
  ASSERT_EQ(wait_exit(p, kLimit), 0) << read_file(dir.path() + "/t.log");
  const std::string log = read_file(dir.path() + "/t.log");
  EXPECT_THAT(log, HasSubstr("restart 1 of the group: resuming from the latest checkpoint"));
  EXPECT_THAT(read_file(dir.path() + "/k/hpt.log"), HasSubstr("resumed from"));
  auto s = summary_of(dir.path() + "/k");
  EXPECT_EQ(s.at("status").as_string(), "completed");
  EXPECT_EQ(s.at("steps").as_int64(), 200);
}
