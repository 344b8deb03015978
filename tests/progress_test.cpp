// The progress line: steps/s as the run's steps over its training time (so a resumed
// run's rate is right), the ETA labelled "to budget" when a target may stop the run
// sooner, a hybrid run's real / predicted steps and roll-backs, and in a log the last
// step's line written once.
#include "output/progress.hpp"

#include <regex>
#include <sstream>

#include <boost/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "test_support.hpp"

using hpt::host::Progress;
using hpt::host::ProgressLayout;
using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

hpt::TrainingState state_at(std::int64_t step, std::int64_t max_steps, double seconds) {
  hpt::TrainingState s;
  s.step = step;
  s.max_steps = max_steps;
  s.seconds = seconds;
  s.last_loss = 0.5;
  return s;
}

std::shared_ptr<spdlog::logger> logger_into(std::ostringstream& out) {
  auto logger = std::make_shared<spdlog::logger>("progress", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_pattern("%v");
  return logger;
}

TEST(Progress, StepsPerSecondIsTheRunsStepsOverItsTrainingTime) {
  std::ostringstream out;
  Progress progress(0, logger_into(out));
  // A resumed run: 1200 steps before this process started, 40 s of training in all. The
  // process's own wall time (0.5 s here) is not what the rate counts.
  progress.start_from(state_at(1000, 2000, 30.0));
  EXPECT_THAT(progress.line(state_at(1200, 2000, 40.0), 0.5), HasSubstr("step 1200/2000  30.0 steps/s  loss 0.5000"));
}

TEST(Progress, TheEtaCountsThisProcessesStepsAndSaysWhenItIsToTheBudget) {
  std::ostringstream out;
  Progress plain(0, logger_into(out));
  plain.start_from(state_at(1000, 2000, 30.0));
  // 200 steps in 10 s of wall time: 800 left take 40 s.
  EXPECT_THAT(plain.line(state_at(1200, 2000, 40.0), 10.0), HasSubstr("  ETA 40s"));
  EXPECT_THAT(plain.line(state_at(1000, 2000, 30.0), 10.0), Not(HasSubstr("ETA")));  // no step yet: no pace

  Progress targeted(0, logger_into(out), ProgressLayout{false, true});
  targeted.start_from(state_at(0, 2000, 0.0));
  EXPECT_THAT(targeted.line(state_at(1000, 2000, 9.0), 10.0), HasSubstr("  ETA to budget 10s"));
}

TEST(Progress, AHybridRunShowsRealAndPredictedStepsAndRollBacks) {
  std::ostringstream out;
  Progress hybrid(0, logger_into(out), ProgressLayout{true, false});
  hpt::TrainingState s = state_at(2000, 4000, 10.0);
  s.real_steps = 1200;
  s.predicted_steps = 800;
  s.rollbacks = 3;
  EXPECT_THAT(hybrid.line(s, 10.0), HasSubstr("real 1200 · predicted 800 (40%) · rolled back 3"));
  Progress full(0, logger_into(out));
  EXPECT_THAT(full.line(s, 10.0), Not(HasSubstr("predicted")));
}

TEST(Progress, ALogGetsTheLastStepsLineOnce) {
  std::ostringstream out;
  Progress progress(0, logger_into(out));
  progress.start_from(state_at(0, 3, 0.0));
  progress.update(state_at(1, 3, 0.1), false);  // the first line comes at once
  progress.update(state_at(3, 3, 0.3), false);  // the last step: left to the final call
  progress.set_last_eval("val_loss 0.25");
  progress.update(state_at(3, 3, 0.3), true);
  progress.update(state_at(3, 3, 0.3), true);  // the same again (a stop after the end): not repeated
  const std::string log = out.str();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << log;
  EXPECT_THAT(log, HasSubstr("step 3/3  10.0 steps/s  loss 0.5000  val_loss 0.25\n"));
}

std::string synthetic_manifest(const std::string& runs_dir, std::int64_t max_steps) {
  return "[run]\nname = \"p\"\nseed = 3\nmax_steps = " + std::to_string(max_steps) +
         "\neval_every = 20\nruns_dir = \"" + runs_dir +
         "\"\n[task]\nplugin = \"synthetic\"\nsamples = 256\n[optimizer]\nplugin = \"adam\"\nlr = 0.01\n";
}

// The lines of hpt.log that are progress lines.
std::vector<std::string> progress_lines(const std::string& run_dir) {
  std::vector<std::string> lines;
  std::istringstream in(read_file(run_dir + "/hpt.log"));
  for (std::string line; std::getline(in, line);)
    if (line.find(" step ") != std::string::npos && line.find(" steps/s") != std::string::npos) lines.push_back(line);
  return lines;
}

TEST(Progress, ARunsLogHasOneLineForItsLastStep) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", synthetic_manifest(dir.path() + "/runs", 1));
  auto r = run_hpt({"run", manifest, "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = progress_lines(dir.path() + "/runs/p");
  ASSERT_EQ(lines.size(), 1u) << read_file(dir.path() + "/runs/p/hpt.log");
  EXPECT_THAT(lines[0], HasSubstr("step 1/1 "));
}

TEST(Progress, AHybridRunsLineCountsWhatItsSummaryCounts) {
  TempDir dir;
  std::string manifest = dir.write("m.toml", synthetic_manifest(dir.path() + "/runs", 60));
  auto r = run_hpt({"run", manifest, "--no-progress", "dynamics.plugin=\"linear\"", "dynamics.min_observations=10",
                    "correction.plugin=\"residual\"", "phase.plugin=\"adaptive\"", "phase.warmup_steps=10",
                    "phase.confidence_threshold=0.0", "phase.min_horizon=2", "phase.initial_horizon=4"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto lines = progress_lines(dir.path() + "/runs/p");
  ASSERT_FALSE(lines.empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(lines.back(), m, std::regex(R"(real (\d+) · predicted (\d+) \(\d+%\) · rolled back (\d+))")))
      << lines.back();
  auto summary = boost::json::parse(read_file(dir.path() + "/runs/p/summary.json")).as_object();
  EXPECT_EQ(std::stoll(m[1]), summary.at("real_steps").as_int64());
  EXPECT_EQ(std::stoll(m[2]), summary.at("predicted_steps").as_int64());
  EXPECT_EQ(std::stoll(m[3]), summary.at("rollbacks").as_int64());
  EXPECT_GT(summary.at("predicted_steps").as_int64(), 0);
}

}  // namespace
