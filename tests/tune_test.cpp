// `hpt tune`: tune manifest errors (file:line:column, the key, what was expected; exit 2,
// before any trial runs), a real search of the synthetic task's learning rate with Optuna
// (the best lr near the known good one, the median pruner stopping trials, trials.csv,
// best.toml that `hpt validate` accepts, report.html), resuming the study (nothing rerun;
// tune.trials=N runs only the new trials), Ctrl-C (the running trial stopped, no process
// left, the trial marked interrupted) and a Python without optuna (exit 2).
// The searches are skipped, with the reason, when /usr/bin/python3 has no optuna.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <boost/json.hpp>

#include "test_support.hpp"
#include "tune/tune_manifest.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

namespace {

struct CommandResult {
  int code;
  std::string output;  // stdout and stderr
};

CommandResult run_command(const std::string& command) {
  CommandResult r{-1, ""};
  FILE* pipe = ::popen(("timeout 120 " + command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

bool have_optuna() { return std::system("/usr/bin/python3 -c 'import optuna' >/dev/null 2>&1") == 0; }

#define SKIP_WITHOUT_OPTUNA() \
  if (!have_optuna()) GTEST_SKIP() << "/usr/bin/python3 has no optuna (Debian: python3-optuna, scripts/deps.sh)"

// A small regression MLP on the synthetic task: SGD's lr decides the validation loss at
// the budget (too small: barely trained).
const char* kBase = R"([run]
name = "tiny"
max_steps = 60
eval_every = 10

[task]
plugin = "synthetic"
hidden = [16]
samples = 256
val_samples = 128

[optimizer]
plugin = "sgd"
lr = 0.05
)";

// SGD's lr for kBase at 2,000 steps (measured, final val_loss): 0.0146: 0.023, 0.068:
// 0.0071, 0.37: 0.0030, 0.38: 0.0031 (at 3,000 steps: 1e-3: 0.39, 0.03: 0.0098, 0.1:
// 0.0039, 0.2: 0.0030, 0.4: 0.0033, 0.7: 0.0039). The search over [1e-4, 1] (4 decades)
// must find a trial in the good 0.8 decade.
constexpr double kGoodLrLow = 0.15, kGoodLrHigh = 1.0;

// 8 random trials (seed 3: two of them land in the good range), 2 at a time, the median
// pruner active once 2 trials completed; an evaluation every 200 steps (the pruner's
// reports), about 1 s of training per full trial.
std::string tune_text(const std::string& runs_dir, std::int64_t budget = 2000) {
  return R"([tune]
name = "lr"
base = "base.toml"
objective = { metric = "val_loss", direction = "minimize" }
sampler = "random"
pruner = { name = "median", startup_trials = 2 }
trials = 8
workers = 2
seed = 3
budget = )" + std::to_string(budget) + R"(
overrides = ['run.eval_every=200']
runs_dir = ")" + runs_dir + R"("

[space]
"optimizer.lr" = { log_uniform = [1e-4, 1.0] }
)";
}

// The bad tune file's error: exit 2, and each of `parts` in the message.
void expect_bad(const TempDir& dir, const std::string& text, const std::vector<std::string>& parts) {
  std::string path = dir.write("bad.toml", text);
  auto r = run_hpt({"tune", path});
  EXPECT_EQ(r.code, 2) << r.err;
  for (const auto& p : parts) EXPECT_THAT(r.err, HasSubstr(p)) << text;
  EXPECT_FALSE(fs::exists(dir.path() + "/runs/tune")) << "nothing runs for a bad tune file";
}

std::vector<boost::json::object> trials_of(const std::string& tune_dir) {
  auto doc = boost::json::parse(read_file(tune_dir + "/trials.json"));
  std::vector<boost::json::object> out;
  for (const auto& t : doc.at("trials").as_array()) out.push_back(t.as_object());
  return out;
}

std::size_t count_state(const std::vector<boost::json::object>& trials, const std::string& state) {
  std::size_t n = 0;
  for (const auto& t : trials) n += t.at("state").as_string() == state;
  return n;
}

}  // namespace

TEST(TuneManifest, BadFilesNameTheFileLineAndKey) {
  TempDir dir;
  dir.write("base.toml", kBase);
  const std::string head = "[tune]\nbase = \"base.toml\"\nobjective = { metric = \"val_loss\", direction = \"minimize\" }\n";
  const std::string lr = "[space]\n\"optimizer.lr\" = { log_uniform = [1e-4, 1e-1] }\n";
  // An unknown key, with the closest known one.
  expect_bad(dir, head + "trails = 5\n" + lr, {"bad.toml:4:1", "unknown key 'trails'", "did you mean 'trials'"});
  // A range the wrong way round.
  expect_bad(dir, head + "trials = 5\n[space]\n\"optimizer.lr\" = { log_uniform = [0.1, 1e-4] }\n",
             {"bad.toml:6:", "space.\"optimizer.lr\".log_uniform", "low < high"});
  // A log scale from 0.
  expect_bad(dir, head + "trials = 5\n[space]\n\"optimizer.lr\" = { uniform = [0.0, 0.1], log = true }\n",
             {"bad.toml:6:", "low must be > 0"});
  // A space key the base manifest cannot take.
  expect_bad(dir, head + "trials = 5\n[space]\n\"optimizer.lrr\" = { uniform = [0.1, 0.2] }\n",
             {"bad.toml:6:", "space key 'optimizer.lrr' does not fit the base manifest", "lrr"});
  // A value outside the option's declared range (batch_size >= 0).
  expect_bad(dir, head + "trials = 5\n[space]\n\"task.batch_size\" = { int = [-8, 64] }\n",
             {"bad.toml:6:", "space key 'task.batch_size'", "task.batch_size = -8"});
  // A choice the option does not accept.
  expect_bad(dir, head + "trials = 5\n[space]\n\"task.kind\" = { choice = [\"regression\", \"ranking\"] }\n",
             {"bad.toml:6:", "task.kind = \"ranking\""});
  // An unknown sampler, with the closest one.
  expect_bad(dir, head + "trials = 5\nsampler = \"tpee\"\n" + lr,
             {"bad.toml:5:11", "'tune.sampler' must be one of tpe, random, grid, cmaes", "did you mean \"tpe\""});
  // A conditional on a key that is not a choice of the space.
  expect_bad(dir, head + "trials = 5\n" + lr + "\"optimizer.momentum\" = { uniform = [0.0, 0.9], when = { \"optimizer.nesterov\" = true } }\n",
             {"bad.toml:7:", "'optimizer.nesterov' is not a key of [space]"});
  // The grid sampler over a float range.
  expect_bad(dir, head + "trials = 5\nsampler = \"grid\"\n" + lr, {"bad.toml:7:", "grid sampler needs choice or int"});
  // Missing trials and a bad override of the tune file.
  expect_bad(dir, head + lr, {"bad.toml:1:1", "[tune] needs 'trials = 30'"});
  std::string good = dir.write("good.toml", head + "trials = 5\n" + lr);
  auto r = run_hpt({"tune", good, "tune.workers=0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("override 'tune.workers=0'"));
  EXPECT_THAT(r.err, HasSubstr("an integer >= 1"));
}

TEST(TuneManifest, TheShippedFm16SearchIsValid) {
  auto r = run_hpt({"validate", std::string(HPT_SOURCE_DIR) + "/bench/tune_fm16.toml"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("30 trials (tpe, pruner median), 2 at a time"));
  hpt::host::TuneManifest t = hpt::host::load_tune_manifest(std::string(HPT_SOURCE_DIR) + "/bench/tune_fm16.toml");
  ASSERT_EQ(t.params.size(), 3u);
  EXPECT_FALSE(t.objective.time_to_target);
  EXPECT_TRUE(t.objective.maximize);
}

TEST(TuneManifest, TimeToTargetNeedsTheBasesTarget) {
  TempDir dir;
  dir.write("base.toml", kBase);
  const std::string tune = "[tune]\nbase = \"base.toml\"\nobjective = { time_to_target = true }\ntrials = 3\n"
                           "[space]\n\"optimizer.lr\" = { log_uniform = [1e-3, 1.0] }\n";
  auto r = run_hpt({"tune", dir.write("t.toml", tune)});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("t.toml:3:13"));
  EXPECT_THAT(r.err, HasSubstr("time_to_target needs a target"));
  dir.write("base.toml", std::string(kBase) + "[run.target]\nmetric = \"val_loss\"\nvalue = 0.05\n");
  hpt::host::TuneManifest t = hpt::host::load_tune_manifest(dir.path() + "/t.toml");
  EXPECT_TRUE(t.objective.time_to_target);
  EXPECT_FALSE(t.objective.maximize);  // seconds: fewer is better
  EXPECT_EQ(t.objective.metric, "val_loss");
  EXPECT_FALSE(t.objective.metric_maximize);
  EXPECT_EQ(t.objective.label, "seconds to val_loss <= 0.05");
}

TEST(TuneManifest, ParsesTheSpaceInSamplingOrder) {
  TempDir dir;
  dir.write("base.toml", kBase);
  std::string path = dir.write("t.toml", R"([tune]
base = "base.toml"
objective = { metric = "val_loss", direction = "minimize" }
trials = 4
budget = 30
[space]
"optimizer.momentum" = { uniform = [0.0, 0.9], step = 0.1, when = { "task.kind" = "regression" } }
"task.kind" = { choice = ["regression", "classification"] }
"task.batch_size" = { int = [8, 64], log = true }
)");
  hpt::host::TuneManifest t = hpt::host::load_tune_manifest(path);
  ASSERT_EQ(t.params.size(), 3u);
  EXPECT_EQ(t.params[0].name, "task.kind");  // before the parameter whose `when` names it
  EXPECT_EQ(t.params[1].name, "optimizer.momentum");
  EXPECT_EQ(t.params[2].name, "task.batch_size");
  EXPECT_TRUE(t.params[2].log);
  EXPECT_EQ(t.sampler, "tpe");
  EXPECT_EQ(t.pruner.name, "median");
  EXPECT_EQ(t.run_overrides, std::vector<std::string>{"run.max_steps=30"});
  EXPECT_THAT(t.storage, HasSubstr("sqlite:///"));
  EXPECT_THAT(t.storage, HasSubstr("runs/tune/t/study.db"));
  auto spec = boost::json::parse(hpt::host::tune_spec_json(t, "/x/hpt")).as_object();
  EXPECT_EQ(spec.at("params").as_array()[1].at("when").at("task.kind").as_string(), "regression");
  // `hpt validate` checks a tune manifest as `hpt tune` does.
  auto v = run_hpt({"validate", path});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_THAT(v.out, HasSubstr("is a valid tune manifest"));
  v = run_hpt({"validate", path, "tune.sampler=\"grid\""});
  EXPECT_EQ(v.code, 2);
  EXPECT_THAT(v.err, HasSubstr("space key 'optimizer.momentum': the grid sampler needs choice or int parameters"));
}

TEST(Tune, SearchesTheLearningRatePrunesAndResumes) {
  SKIP_WITHOUT_OPTUNA();
  TempDir dir;
  dir.write("base.toml", kBase);
  const std::string tune_dir = dir.path() + "/tune";
  std::string path = dir.write("tune.toml", tune_text(tune_dir));
  auto r = run_command(std::string(HPT_EXE) + " tune " + path);
  ASSERT_EQ(r.code, 0) << r.output;
  auto trials = trials_of(tune_dir);
  ASSERT_EQ(trials.size(), 8u) << r.output;
  EXPECT_GE(count_state(trials, "PRUNED"), 1u) << r.output;  // the median pruner stopped some
  EXPECT_GE(count_state(trials, "COMPLETE"), 2u) << r.output;
  std::string csv = read_file(tune_dir + "/trials.csv");
  EXPECT_THAT(csv, HasSubstr("number,state,value,optimizer.lr"));
  EXPECT_THAT(csv, HasSubstr(",PRUNED,"));
  // The best trial's lr is near the known good one for this model and budget.
  double best_lr = 0, best = 1e300;
  for (const auto& t : trials)
    if (t.at("state").as_string() == "COMPLETE" && t.at("value").to_number<double>() < best) {
      best = t.at("value").to_number<double>();
      best_lr = t.at("params").at("optimizer.lr").to_number<double>();
    }
  EXPECT_GT(best_lr, kGoodLrLow) << r.output;
  EXPECT_LT(best_lr, kGoodLrHigh) << r.output;
  // A pruned trial's reports stop at the pruner's decision, and its run gets SIGTERM: it
  // stops cleanly ("interrupted", before the budget), or, when the whole run (a fraction of
  // a second here) ended between the driver's polls before the signal landed, it completed.
  for (const auto& t : trials)
    if (t.at("state").as_string() == "PRUNED") {
      EXPECT_LT(t.at("intermediate").as_array().size(), 10u);
      auto summary = boost::json::parse(read_file(std::string(t.at("run_dir").as_string()) + "/summary.json")).as_object();
      const std::string status(summary.at("status").as_string());
      if (status == "interrupted")
        EXPECT_LT(summary.at("steps").as_int64(), 2000);
      else
        EXPECT_EQ(status, "completed");
    }
  // best.toml: the base with the best lr, valid as it is.
  std::string best_toml = read_file(tune_dir + "/best.toml");
  EXPECT_THAT(best_toml, HasSubstr("plugin = \"synthetic\""));
  auto v = run_hpt({"validate", tune_dir + "/best.toml"});
  EXPECT_EQ(v.code, 0) << v.err;
  std::string html = read_file(tune_dir + "/report.html");
  EXPECT_THAT(html, HasSubstr("id=\"plot-objective\""));
  EXPECT_THAT(html, HasSubstr("id=\"plot-slice-optimizer.lr\""));
  EXPECT_THAT(html, HasSubstr("PRUNED"));

  // The same command again resumes the study: nothing runs.
  struct stat before {};
  ASSERT_EQ(::stat((tune_dir + "/trials/0/metrics.jsonl").c_str(), &before), 0);
  r = run_command(std::string(HPT_EXE) + " tune " + path);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("already has 8 of 8 trials"));
  EXPECT_EQ(trials_of(tune_dir).size(), 8u);
  // More trials asked for: only the new ones run.
  r = run_command(std::string(HPT_EXE) + " tune " + path + " tune.trials=10");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("8 of 10 trials done; running 2"));
  trials = trials_of(tune_dir);
  EXPECT_EQ(trials.size(), 10u);
  EXPECT_TRUE(fs::exists(tune_dir + "/trials/9/summary.json"));
  struct stat after {};
  ASSERT_EQ(::stat((tune_dir + "/trials/0/metrics.jsonl").c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  // --report-only writes the outputs again from the study.
  fs::remove(tune_dir + "/report.html");
  r = run_command(std::string(HPT_EXE) + " tune " + path + " --report-only");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(tune_dir + "/report.html"));
}

TEST(Tune, CtrlCStopsTheRunningTrialsAndLeavesNoProcess) {
  SKIP_WITHOUT_OPTUNA();
  TempDir dir;
  dir.write("base.toml", kBase);
  const std::string tune_dir = dir.path() + "/tune";
  std::string path = dir.write("tune.toml", tune_text(tune_dir, 1000000));
  pid_t pid = hpt::test::spawn({"tune", path, "tune.trials=1", "tune.workers=1"}, dir.path() + "/tune.log");
  // Wait (bounded) for the trial's first evaluation, then Ctrl-C as a terminal sends it.
  const std::string metrics = tune_dir + "/trials/0/metrics.jsonl";
  for (int i = 0; i < 600 && read_file(metrics).find("\"eval\"") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_NE(read_file(metrics).find("\"eval\""), std::string::npos) << read_file(dir.path() + "/tune.log");
  ::kill(-pid, SIGINT);
  EXPECT_EQ(hpt::test::wait_exit(pid, 60), 130) << read_file(dir.path() + "/tune.log");
  EXPECT_EQ(::kill(-pid, 0), -1) << "a process of the tune is left";
  EXPECT_EQ(errno, ESRCH);
  EXPECT_THAT(read_file(dir.path() + "/tune.log"), HasSubstr("run the same command again to resume the study"));
  auto trials = trials_of(tune_dir);
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].at("state").as_string(), "FAIL");
  EXPECT_TRUE(trials[0].at("interrupted").as_bool());
}

TEST(Tune, APythonWithoutOptunaIsBadInput) {
  TempDir dir;
  dir.write("base.toml", kBase);
  // A module named optuna that cannot be imported stands in for a missing one.
  dir.write("fake/optuna.py", "raise ImportError('no optuna here')\n");
  std::string path = dir.write("tune.toml", tune_text(dir.path() + "/tune"));
  auto r = run_command("env PYTHONPATH=" + dir.path() + "/fake " + HPT_EXE + " tune " + path);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("the Python module optuna is missing"));
  EXPECT_THAT(r.output, HasSubstr("python3-optuna"));
}

// Optuna's distributed mode: two `hpt tune` processes (two machines, in effect) share one
// study in PostgreSQL and together run the trials it asks for, each trial once. Skipped
// unless a PostgreSQL server can be started here (Debian's postgresql, and
// python3-psycopg2 for Optuna).
TEST(Tune, TwoProcessesShareOneStudyInPostgres) {
  SKIP_WITHOUT_OPTUNA();
  if (std::system("command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v createdb >/dev/null") != 0 ||
      std::system("/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no PostgreSQL server programs (initdb, pg_ctl) or no python3-psycopg2";
  TempDir dir;
  // The server refuses to run as root: then it runs as the postgres user.
  const bool root = ::geteuid() == 0;
  if (root && (std::system("id postgres >/dev/null 2>&1") != 0 ||
               std::system(("chown postgres " + dir.path()).c_str()) != 0))
    GTEST_SKIP() << "running as root without a postgres user to run the server";
  const std::string as = root ? "runuser -u postgres -- " : "";
  const std::string pg = dir.path() + "/pg", log = dir.path() + "/pg.log";
  ASSERT_EQ(std::system((as + "initdb -D " + pg + " -A trust >" + log + " 2>&1").c_str()), 0) << read_file(log);
  ASSERT_EQ(std::system((as + "pg_ctl -D " + pg + " -o \"-k " + dir.path() + " -c listen_addresses=''\" -l " + dir.path() +
                         "/server.log -w -t 30 start >>" + log + " 2>&1").c_str()),
            0)
      << read_file(log);
  struct StopServer {
    std::string command;
    ~StopServer() { [[maybe_unused]] int rc = std::system(command.c_str()); }
  } stop{as + "pg_ctl -D " + pg + " -m immediate stop >/dev/null 2>&1"};
  ASSERT_EQ(std::system((as + "createdb -h " + dir.path() + " hpt >>" + log + " 2>&1").c_str()), 0) << read_file(log);

  dir.write("base.toml", kBase);
  std::string path = dir.write("tune.toml", tune_text(dir.path() + "/a", 600));
  const std::string storage = "tune.storage=\"postgresql://" + std::string(root ? "postgres" : "") + "@/hpt?host=" + dir.path() + "\"";
  // Each its own sampler seed, or both would propose the same values.
  pid_t a = hpt::test::spawn({"tune", path, storage, "tune.trials=4", "tune.workers=1", "tune.seed=1"}, dir.path() + "/a.log");
  pid_t b = hpt::test::spawn({"tune", path, storage, "tune.trials=4", "tune.workers=1", "tune.seed=2",
                              "tune.runs_dir=\"" + dir.path() + "/b\""},
                             dir.path() + "/b.log");
  EXPECT_EQ(hpt::test::wait_exit(a, 120), 0) << read_file(dir.path() + "/a.log");
  EXPECT_EQ(hpt::test::wait_exit(b, 120), 0) << read_file(dir.path() + "/b.log");
  auto trials = trials_of(dir.path() + "/b");
  ASSERT_EQ(trials.size(), 4u);
  std::size_t in_a = 0, in_b = 0;
  for (const auto& t : trials) {
    std::string run_dir(t.at("run_dir").as_string());
    in_a += run_dir.rfind(dir.path() + "/a/", 0) == 0;
    in_b += run_dir.rfind(dir.path() + "/b/", 0) == 0;
    EXPECT_TRUE(fs::exists(run_dir + "/summary.json")) << run_dir;
  }
  EXPECT_EQ(in_a + in_b, 4u);
  EXPECT_GE(in_a, 1u);
  EXPECT_GE(in_b, 1u);
}
