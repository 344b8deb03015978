// The engine: full training writes an honest run directory, stops at targets and on
// early stopping, fails clearly on NaN; predicted steps apply exactly the forecast,
// run no forward or backward pass, and roll back bit for bit.
#include "engine/engine.hpp"

#include <filesystem>

#include <cmath>
#include <sstream>

#include <boost/json.hpp>

#include "checkpoint/checkpoint_tools.hpp"
#include "process/error_text.hpp"
#include "test_support.hpp"

using hpt::host::Engine;
using hpt::host::EngineOptions;
using hpt::host::Manifest;
using hpt::host::PluginLoader;
using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

std::string plugins_dir() { return std::string(HPT_BINARY_DIR) + "/plugins"; }
std::string engine_plugins_dir() { return std::string(HPT_TEST_PLUGIN_DIR) + "/engine"; }

const char* kSynthetic = R"(
[run]
name = "synthetic"
seed = 3
max_steps = 60
eval_every = 20
[task]
plugin = "synthetic"
[optimizer]
plugin = "adam"
lr = 0.01
)";

const char* kCounting = R"(
[run]
name = "counting"
max_steps = 50
eval_every = 0
probe_interval = 2
[task]
plugin = "counting"
[optimizer]
plugin = "sgd"
lr = 0.05
[dynamics]
plugin = "fixed"
[correction]
plugin = "none"
tolerance = 1000.0
)";

using Built = hpt::test::BuiltEngine;

Built build(const std::string& text, const std::vector<std::string>& overrides, const std::string& runs_dir = "") {
  std::vector<std::string> all = overrides;
  all.push_back("run.plugin_dirs=[\"" + engine_plugins_dir() + "\"]");
  return hpt::test::build_engine(text, all, runs_dir);
}

std::vector<boost::json::object> read_jsonl(const std::string& path) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(boost::json::parse(line).as_object());
  return lines;
}

std::vector<torch::Tensor> clone_all(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

TEST(Engine, FullTrainingWritesAnHonestRunDirectory) {
  TempDir dir;
  auto b = build(kSynthetic, {}, dir.path());
  auto s = b.engine->run();
  const std::string run = dir.path() + "/synthetic";
  EXPECT_EQ(s.status, "completed");
  EXPECT_EQ(s.steps, 60);
  EXPECT_EQ(s.real_steps, 60);
  EXPECT_EQ(s.forward_passes, 60);
  EXPECT_EQ(s.backward_passes, 60);
  EXPECT_EQ(s.evaluations, 3);

  auto lines = read_jsonl(run + "/metrics.jsonl");
  std::vector<double> losses;
  int evals = 0;
  double train_seconds = 0.0;
  for (const auto& l : lines) {
    if (l.at("type") == "step") {
      EXPECT_EQ(l.at("kind"), "full");
      losses.push_back(l.at("loss").as_double());
      train_seconds += l.at("seconds").as_double();
    } else if (l.at("type") == "eval") {
      ++evals;
      EXPECT_TRUE(l.contains("val_loss"));
    }
  }
  ASSERT_EQ(losses.size(), 60u);
  EXPECT_EQ(evals, 3);
  double first = (losses[0] + losses[1] + losses[2]) / 3, last = (losses[57] + losses[58] + losses[59]) / 3;
  EXPECT_LT(last, 0.5 * first) << "training loss did not fall";
  EXPECT_NEAR(train_seconds, s.train_seconds, 1e-9) << "training time is the sum of the step times";

  auto summary = boost::json::parse(read_file(run + "/summary.json")).as_object();
  EXPECT_EQ(summary.at("steps").as_int64(), 60);
  EXPECT_EQ(summary.at("backward_passes").as_int64(), 60);
  EXPECT_GT(summary.at("eval_seconds").as_double(), 0.0);
  EXPECT_TRUE(summary.at("final_metrics").as_object().contains("val_loss"));

  // The resolved manifest is a valid manifest on its own.
  auto r = run_hpt({"validate", run + "/config.resolved.toml"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(read_file(run + "/config.resolved.toml"), HasSubstr("lr = 0.01"));
  EXPECT_THAT(read_file(run + "/hpt.log"), HasSubstr("run 'synthetic'"));

  // The final weights, without any [checkpointer]: the model's own names and values.
  auto weights = hpt::host::read_model_tensors(read_file(run + "/final_weights.pt"), run);
  const auto& layout = b.engine->layout();
  ASSERT_EQ(weights.size(), layout.names.size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    EXPECT_EQ(weights[i].first, layout.names[i]);
    EXPECT_TRUE(torch::equal(weights[i].second, b.engine->parameters()[i])) << layout.names[i];
  }
}

TEST(Engine, TargetStopsTheRunAndRecordsTimeToTarget) {
  auto b = build(kSynthetic, {"run.max_steps=400", "run.target={metric=\"val_loss\", value=0.5}"});
  auto s = b.engine->run();
  EXPECT_EQ(s.status, "target_reached");
  ASSERT_TRUE(s.steps_to_target.has_value());
  EXPECT_EQ(*s.steps_to_target % 20, 0);
  EXPECT_LT(*s.steps_to_target, 400);
  EXPECT_EQ(s.steps, *s.steps_to_target);
  EXPECT_LE(s.final_metrics.at("val_loss"), 0.5);
  EXPECT_EQ(*s.backward_passes_to_target, *s.steps_to_target);
  EXPECT_NEAR(*s.seconds_to_target, s.train_seconds, 1e-12);
}

// run.eval_threads: evaluation runs with its own LibTorch thread count, and training
// (the batches before and after it) keeps the backend's.
TEST(Engine, EvaluationThreadsApplyToEvaluationOnly) {
  auto threads_seen = [](const std::vector<std::string>& extra) {
    std::vector<std::string> o = {"task.report_threads=true", "backend.plugin=\"cpu\"", "backend.threads=1",
                                  "run.eval_every=10", "run.max_steps=30"};
    o.insert(o.end(), extra.begin(), extra.end());
    auto s = build(kCounting, o).engine->run();
    EXPECT_EQ(torch::get_num_threads(), 1) << "the thread count after the run is training's";
    return std::make_pair(s.final_metrics.at("train_threads"), s.final_metrics.at("eval_threads"));
  };
  EXPECT_EQ(threads_seen({}), std::make_pair(1.0, 1.0));
  EXPECT_EQ(threads_seen({"run.eval_threads=3"}), std::make_pair(1.0, 3.0));
}

// A 400-step synthetic run with run.target = { metric = "val_loss", value = 0.5<extra> }.
hpt::host::RunSummary run_to_target(const std::string& extra) {
  return build(kSynthetic, {"run.max_steps=400", "run.target={metric=\"val_loss\", value=0.5" + extra + "}"})
      .engine->run();
}

TEST(Engine, TargetWithoutStopRecordsTimeToTargetAndGoesOnToTheBudget) {
  auto s = run_to_target(", stop=false");
  EXPECT_EQ(s.status, "completed");
  EXPECT_EQ(s.steps, 400);
  ASSERT_TRUE(s.steps_to_target.has_value());
  EXPECT_LT(*s.steps_to_target, 400);
  ASSERT_TRUE(s.seconds_to_target.has_value());
  EXPECT_LT(*s.seconds_to_target, s.train_seconds);
  EXPECT_LE(s.final_metrics.at("val_loss"), 0.5);
}

TEST(Engine, TargetWithMinStepsGoesOnToThemBeforeStopping) {
  auto s = run_to_target(", min_steps=300");
  EXPECT_EQ(s.status, "target_reached");
  EXPECT_EQ(s.steps, 300);
  ASSERT_TRUE(s.steps_to_target.has_value());
  EXPECT_LT(*s.steps_to_target, 300);
}

TEST(Engine, TargetReachedAfterMinStepsStopsThere) {
  auto early = run_to_target("");
  ASSERT_TRUE(early.steps_to_target.has_value());
  auto s = run_to_target(", min_steps=20");
  EXPECT_EQ(s.status, "target_reached");
  EXPECT_EQ(s.steps, *early.steps_to_target);
}

TEST(Engine, EarlyStoppingFiresAfterPatience) {
  // min_delta is so large that nothing counts as improvement after the first evaluation.
  auto b = build(kSynthetic, {"run.max_steps=400", "run.early_stop={metric=\"val_loss\", patience=2, min_delta=1e9}"});
  auto s = b.engine->run();
  EXPECT_EQ(s.status, "early_stopped");
  EXPECT_EQ(s.evaluations, 3);
  EXPECT_EQ(s.steps, 60);
}

TEST(Engine, UnknownTargetMetricIsBadInput) {
  try {
    build(kSynthetic, {"run.target={metric=\"val_acc\", value=0.5}"});
    FAIL() << "accepted an unknown metric";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(e.what(), HasSubstr("metric 'val_acc' is not reported by task 'synthetic'"));
  }
}

TEST(Engine, NanLossStopsWithExitOneAndKeepsMetrics) {
  TempDir dir;
  std::string path = dir.write("m.toml", kSynthetic);
  auto r = run_hpt({"run", path, "optimizer.plugin=\"sgd\"", "optimizer.lr=1e12", "run.runs_dir=\"" + dir.path() + "\""});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("training diverged"));
  EXPECT_THAT(r.err, HasSubstr("loss is not finite"));
  EXPECT_THAT(r.err, HasSubstr("after 3 roll-backs"));
  EXPECT_FALSE(read_file(dir.path() + "/synthetic/metrics.jsonl").empty());
}

// Each critical roll-back cuts the learning rate again: the cuts compound (1e12, then
// 5e11, 2.5e11, 1.25e11), though every roll-back restores the same last good state.
// A diverged loss is null in metrics.jsonl, which stays valid JSON line by line.
TEST(Engine, LearningRateCutsCompoundOverRollBacks) {
  TempDir dir;
  std::string path = dir.write("m.toml", kSynthetic);
  auto r = run_hpt({"run", path, "optimizer.plugin=\"sgd\"", "optimizer.lr=1e12", "run.log_every=1",
                    "run.runs_dir=\"" + dir.path() + "\""});
  ASSERT_EQ(r.code, 1) << r.err;
  std::vector<double> lrs;
  std::istringstream in(read_file(dir.path() + "/synthetic/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto o = boost::json::parse(line).as_object();
    if (o.at("type").as_string() == "step" && o.at("loss").is_null())  // the steps that diverged
      lrs.push_back(o.at("lr").to_number<double>());
  }
  ASSERT_EQ(lrs.size(), 4u);
  for (std::size_t i = 0; i < lrs.size(); ++i) EXPECT_DOUBLE_EQ(lrs[i], 1e12 * std::pow(0.5, static_cast<double>(i))) << i;
}

TEST(Engine, ABestMetricTheTaskDoesNotReportIsBadInput) {
  TempDir dir;
  std::string path = dir.write("m.toml", kSynthetic);
  auto r = run_hpt({"run", path, "run.runs_dir=\"" + dir.path() + "\"", "checkpointer.plugin=\"torch\"",
                    "checkpointer.best_metric=\"val_acc\""});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("checkpointer.best_metric: metric 'val_acc' is not reported by task 'synthetic'"));
}

// A plugin that fails to start leaves no run directory behind: the corrected command runs.
TEST(Engine, AFailedStartLeavesNoRunDirectory) {
  TempDir dir;
  std::string path = dir.write("m.toml", kSynthetic);
  const std::string runs = "run.runs_dir=\"" + dir.path() + "\"";
  auto bad = run_hpt({"run", path, runs, "checkpointer.plugin=\"torch\"", "checkpointer.directory=\"/tmp/elsewhere\""});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("checkpointer.directory must be a relative path inside the run directory"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/synthetic"));
  auto good = run_hpt({"run", path, runs, "run.max_steps=5"});
  EXPECT_EQ(good.code, 0) << good.err;
}

TEST(Engine, AFailedRunWritesASummarySayingWhy) {
  TempDir dir;
  std::string path = dir.write("m.toml", kSynthetic);
  auto r = run_hpt({"run", path, "optimizer.plugin=\"sgd\"", "optimizer.lr=1e12", "run.runs_dir=\"" + dir.path() + "\""});
  ASSERT_EQ(r.code, 1);
  auto summary = boost::json::parse(read_file(dir.path() + "/synthetic/summary.json")).as_object();
  EXPECT_EQ(summary.at("status").as_string(), "failed");
  EXPECT_THAT(std::string(summary.at("error").as_string()), HasSubstr("training diverged"));
  EXPECT_GT(summary.at("steps").as_int64(), 0);
}

// LibTorch's errors come with a 30-frame backtrace; hpt says the first line.
TEST(Engine, AnAllocationFailureIsOneLine) {
  try {
    auto huge = torch::empty({std::int64_t{1} << 60}, torch::kFloat32);
    FAIL() << "allocated " << huge.numel() << " floats";
  } catch (const std::exception& e) {
    std::string text = hpt::host::error_text(e);
    EXPECT_THAT(text, HasSubstr("bytes"));
    EXPECT_EQ(text.find('\n'), std::string::npos) << text;
    EXPECT_EQ(text.find("Exception raised from"), std::string::npos) << text;
  }
}

TEST(Engine, ExistingRunDirectoryIsNotOverwritten) {
  TempDir dir;
  std::string path = dir.write("m.toml", kSynthetic);
  std::string runs = "run.runs_dir=\"" + dir.path() + "\"";
  ASSERT_EQ(run_hpt({"run", path, runs, "run.max_steps=5"}).code, 0);
  auto again = run_hpt({"run", path, runs, "run.max_steps=5"});
  EXPECT_EQ(again.code, 2);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  EXPECT_EQ(run_hpt({"run", path, runs, "run.max_steps=5", "--overwrite"}).code, 0);
}

TEST(Engine, PredictedStepAppliesExactlyTheForecastWithoutForwardOrBackward) {
  auto b = build(kCounting, {"dynamics.step=0.001", "dynamics.scale=0.5", "run.probe_interval=100"});
  Engine& e = *b.engine;
  for (int i = 0; i < 3; ++i) e.real_step(hpt::StepKind::Full);
  auto before = clone_all(e.parameters());
  auto counts_before = e.task().evaluate();

  std::int64_t kept = e.predicted_phase(1);
  ASSERT_EQ(kept, 1);
  for (std::size_t p = 0; p < before.size(); ++p) {
    torch::Tensor expected = before[p] + torch::full_like(before[p], 0.001) * 0.5;
    EXPECT_TRUE(torch::equal(e.parameters()[p], expected)) << e.layout().names[p];
    EXPECT_FALSE(torch::equal(e.parameters()[p], before[p])) << e.layout().names[p];
  }
  auto counts_after = e.task().evaluate();
  // Two probes (before the phase and at its end) are the only forward passes; no backward.
  EXPECT_EQ(counts_after.at("forward_calls") - counts_before.at("forward_calls"), 2);
  EXPECT_EQ(counts_after.at("backward_calls"), counts_before.at("backward_calls"));
  EXPECT_EQ(e.summary().predicted_steps, 1);
  EXPECT_EQ(e.summary().backward_passes, 3);
  EXPECT_EQ(e.state().step, 4);
}

TEST(Engine, APhaseStartsFromTheForecastOffset) {
  // The first predicted step adds the offset and the first scaled update; the second only its update.
  auto b = build(kCounting, {"dynamics.step=0.001", "dynamics.scale=0.5", "dynamics.offset=0.25",
                             "run.probe_interval=100", "correction.tolerance=1e9"});
  Engine& e = *b.engine;
  for (int i = 0; i < 3; ++i) e.real_step(hpt::StepKind::Full);
  auto before = clone_all(e.parameters());
  ASSERT_EQ(e.predicted_phase(2), 2);
  for (std::size_t p = 0; p < before.size(); ++p) {
    torch::Tensor expected = before[p] + 0.25 + 2 * 0.001 * 0.5;
    EXPECT_TRUE(torch::allclose(e.parameters()[p], expected, 0.0, 1e-6)) << e.layout().names[p];
  }
  EXPECT_EQ(e.state().step, 5);
}

TEST(Engine, LongerPhaseProbesAtTheIntervalOnly) {
  auto b = build(kCounting, {"run.probe_interval=4"});
  Engine& e = *b.engine;
  e.real_step(hpt::StepKind::Full);
  auto c0 = e.task().evaluate();
  ASSERT_EQ(e.predicted_phase(8), 8);
  auto c1 = e.task().evaluate();
  EXPECT_EQ(c1.at("forward_calls") - c0.at("forward_calls"), 3);  // before, after 4, after 8
  EXPECT_EQ(c1.at("backward_calls"), c0.at("backward_calls"));
  EXPECT_EQ(e.summary().probes, 3);
}

std::string optimizer_bytes(Engine& e) {
  torch::serialize::OutputArchive a;
  hpt::StateWriter a_state(a, /*copy=*/true);
  e.optimizer().save(a_state);
  std::ostringstream os;
  a.save_to(os);
  return os.str();
}

TEST(Engine, RollbackRestoresBitIdenticalWeightsAndOptimizerState) {
  // A huge step makes the probe loss explode; tolerance 0.5 rolls it back.
  auto b = build(kCounting, {"dynamics.step=10.0", "correction.tolerance=0.5"});
  Engine& e = *b.engine;
  for (int i = 0; i < 3; ++i) e.real_step(hpt::StepKind::Full);
  auto before = clone_all(e.parameters());
  std::string opt_before = optimizer_bytes(e);
  EXPECT_EQ(e.predicted_phase(4), 0);
  for (std::size_t p = 0; p < before.size(); ++p) EXPECT_TRUE(torch::equal(e.parameters()[p], before[p]));
  EXPECT_EQ(optimizer_bytes(e), opt_before);
  EXPECT_EQ(e.summary().rollbacks, 1);
  EXPECT_EQ(e.summary().predicted_discarded, 2);  // probe_interval = 2
  EXPECT_EQ(e.state().step, 3);
}

TEST(Engine, NanInjectedIntoAPredictedPhaseIsRolledBack) {
  auto b = build(kCounting, {"dynamics.nan=true"});
  Engine& e = *b.engine;
  for (int i = 0; i < 3; ++i) e.real_step(hpt::StepKind::Full);
  auto before = clone_all(e.parameters());
  EXPECT_EQ(e.predicted_phase(4), 0);
  for (std::size_t p = 0; p < before.size(); ++p) {
    EXPECT_TRUE(torch::equal(e.parameters()[p], before[p]));
    EXPECT_TRUE(torch::isfinite(e.parameters()[p]).all().item<bool>());
  }
  EXPECT_EQ(e.summary().rollbacks, 1);
}

}  // namespace
