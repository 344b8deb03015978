// Weight averaging ([averaging]) and Lookahead ([lookahead]), the host's features for
// every run: the average is the EMA of the weights after every real step (checked against
// one computed here from the recorded weights), its metrics are "avg.<metric>" beside the
// raw ones, a target can name them, a resumed run's average is bit for bit an
// uninterrupted run's, final_averaged_weights.pt is written and `hpt eval --averaged`
// evaluates it; Lookahead's synchronisation is phi + alpha * (theta_k - phi), computed
// here from a run without it; bad keys are reported where they are.
#include <filesystem>
#include <iomanip>
#include <sstream>

#include <boost/json.hpp>

#include "checkpoint/checkpoint_tools.hpp"
#include "checkpoint/weights_file.hpp"
#include "test_support.hpp"

using hpt::host::Engine;
using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

const char* kSynthetic = R"(
[run]
name = "avg"
seed = 5
max_steps = 60
eval_every = 20
[task]
plugin = "synthetic"
[optimizer]
plugin = "sgd"
lr = 0.05
)";

using Built = hpt::test::BuiltEngine;

Built build(const std::string& text, std::vector<std::string> overrides, const std::string& runs_dir = "") {
  overrides.push_back("run.plugin_dirs=[\"" + std::string(HPT_TEST_PLUGIN_DIR) + "/engine\"]");
  return hpt::test::build_engine(text, overrides, runs_dir);
}

std::vector<torch::Tensor> clone_all(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone());
  return out;
}

std::vector<boost::json::object> eval_lines(const std::string& run_dir) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) {
      auto o = boost::json::parse(line).as_object();
      if (o.at("type") == "eval") lines.push_back(o);
    }
  return lines;
}

hpt::host::NamedTensors weights_in(const std::string& file) {
  return hpt::host::read_model_tensors(read_file(file), file);
}

void expect_bit_identical(const hpt::host::NamedTensors& a, const hpt::host::NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first << " differs";
  }
}

std::string bad_input(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    build(text, overrides);
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << text;
  return "";
}

// ---------------------------------------------------------------------------------
// Weight averaging

TEST(Averaging, TheAverageIsTheEmaOfTheWeightsAfterEveryRealStepFromStartStep) {
  const double decay = 0.8;
  auto b = build(std::string(kSynthetic) + "[averaging]\ndecay = 0.8\nstart_step = 2\n", {});
  Engine& e = *b.engine;
  std::vector<std::vector<torch::Tensor>> recorded;  // the weights after steps 1..6
  for (int i = 0; i < 6; ++i) {
    e.real_step(hpt::StepKind::Full);
    recorded.push_back(clone_all(e.parameters()));
    EXPECT_EQ(e.weight_average().started(), i + 1 >= 2) << "after step " << i + 1;
  }
  // By hand, in float64: a copy of the weights after step 2, then avg = d * avg + (1 - d) * w.
  std::vector<torch::Tensor> expected;
  for (const auto& w : recorded[1]) expected.push_back(w.to(torch::kFloat64));
  for (std::size_t step = 3; step <= 6; ++step)
    for (std::size_t p = 0; p < expected.size(); ++p)
      expected[p] = decay * expected[p] + (1 - decay) * recorded[step - 1][p].to(torch::kFloat64);
  const auto& average = e.weight_average().average();
  ASSERT_EQ(average.size(), expected.size());
  for (std::size_t p = 0; p < expected.size(); ++p) {
    EXPECT_TRUE(torch::allclose(average[p].to(torch::kFloat64), expected[p], 1e-6, 1e-7)) << e.layout().names[p];
    EXPECT_FALSE(torch::allclose(average[p], e.parameters()[p])) << "the average is not the weights";
  }
}

TEST(Averaging, PredictedStepsLeaveTheAverageAndLookaheadsCountAsTheyAre) {
  // The counting task with fixed forecasts: a kept predicted phase moves the weights, but
  // only real steps update the average and count toward Lookahead's k.
  const char* counting = R"(
[run]
name = "counting"
max_steps = 50
eval_every = 0
probe_interval = 100
[task]
plugin = "counting"
[optimizer]
plugin = "sgd"
lr = 0.05
[dynamics]
plugin = "fixed"
step = 0.001
[correction]
plugin = "none"
tolerance = 1000.0
[averaging]
decay = 0.5
[lookahead]
k = 3
)";
  auto b = build(counting, {});
  Engine& e = *b.engine;
  e.real_step(hpt::StepKind::Full);
  e.real_step(hpt::StepKind::Full);
  auto average = clone_all(e.weight_average().average());
  ASSERT_EQ(e.lookahead().steps_since_sync(), 2);
  ASSERT_EQ(e.predicted_phase(4), 4);
  EXPECT_EQ(e.state().step, 6);
  EXPECT_EQ(e.lookahead().steps_since_sync(), 2);
  for (std::size_t p = 0; p < average.size(); ++p)
    EXPECT_TRUE(torch::equal(e.weight_average().average()[p], average[p]));
  e.real_step(hpt::StepKind::Correct);  // the third real step: Lookahead synchronises
  EXPECT_EQ(e.lookahead().steps_since_sync(), 0);
  for (std::size_t p = 0; p < average.size(); ++p)
    EXPECT_FALSE(torch::equal(e.weight_average().average()[p], average[p]));
}

TEST(Averaging, AveragedMetricsAreReportedBesideTheRawOnesEverywhere) {
  TempDir dir;
  auto b = build(std::string(kSynthetic) + "[averaging]\ndecay = 0.9\n", {"run.loggers=[\"jsonl\", \"csv\"]"},
                 dir.path());
  auto s = b.engine->run();
  const std::string run = dir.path() + "/avg";
  auto evals = eval_lines(run);
  ASSERT_EQ(evals.size(), 3u);
  for (const auto& l : evals) {
    ASSERT_TRUE(l.contains("val_loss"));
    ASSERT_TRUE(l.contains("avg.val_loss"));
    EXPECT_NE(l.at("val_loss").as_double(), l.at("avg.val_loss").as_double());
  }
  EXPECT_TRUE(s.final_metrics.count("avg.val_loss"));
  auto summary = boost::json::parse(read_file(run + "/summary.json")).as_object();
  EXPECT_TRUE(summary.at("final_metrics").as_object().contains("avg.val_loss"));
  const std::string csv = read_file(run + "/metrics.csv");
  EXPECT_THAT(csv.substr(0, csv.find('\n')), HasSubstr("avg.val_loss"));
  // The swap for evaluation puts the raw weights back: they are the ones written as final_weights.pt.
  auto final_weights = weights_in(run + "/final_weights.pt");
  for (std::size_t p = 0; p < b.engine->parameters().size(); ++p)
    EXPECT_TRUE(torch::equal(final_weights[p].second, b.engine->parameters()[p]));
}

TEST(Averaging, EvaluateAverageReportsOnlyTheAveragedMetricsAndRawNone) {
  auto avg = build(std::string(kSynthetic) + "[averaging]\nevaluate = \"average\"\n", {}).engine->run();
  for (const auto& [name, value] : avg.final_metrics) EXPECT_EQ(name.rfind("avg.", 0), 0u) << name;
  EXPECT_TRUE(avg.final_metrics.count("avg.val_loss"));
  auto raw = build(std::string(kSynthetic) + "[averaging]\nevaluate = \"raw\"\n", {}).engine->run();
  EXPECT_TRUE(raw.final_metrics.count("val_loss"));
  EXPECT_FALSE(raw.final_metrics.count("avg.val_loss"));
}

TEST(Averaging, ATargetOnTheAveragedLossStopsTheRunAtTheFirstEvaluationReachingIt) {
  const std::string text = std::string(kSynthetic) + "[averaging]\ndecay = 0.9\n";
  TempDir dir;
  build(text, {}, dir.path()).engine->run();
  auto evals = eval_lines(dir.path() + "/avg");
  ASSERT_EQ(evals.size(), 3u);
  const double target = evals[1].at("avg.val_loss").as_double();  // step 40's
  std::int64_t expected_step = evals[0].at("avg.val_loss").as_double() <= target ? 20 : 40;
  std::ostringstream value;
  value << std::setprecision(17) << target;
  auto s = build(text, {"run.target={metric=\"avg.val_loss\", value=" + value.str() + "}"}).engine->run();
  EXPECT_EQ(s.status, "target_reached");
  ASSERT_TRUE(s.steps_to_target.has_value());
  EXPECT_EQ(*s.steps_to_target, expected_step);
  EXPECT_EQ(s.steps, expected_step);
}

TEST(Averaging, AMetricOfTheAverageNeedsTheAverageEvaluated) {
  const std::string target = "run.target={metric=\"avg.val_loss\", value=0.5}";
  EXPECT_THAT(bad_input(kSynthetic, {target}), HasSubstr("add an [averaging] section"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\nevaluate = \"raw\"\n", {target}),
              HasSubstr("evaluate = \"raw\" does not evaluate"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\nevaluate = \"average\"\n",
                        {"run.early_stop={metric=\"val_loss\"}"}),
              HasSubstr("name 'avg.val_loss'"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\n", {"run.target={metric=\"avg.val_los\", value=1}"}),
              HasSubstr("did you mean 'avg.val_loss'"));
  // A checkpointer's best_metric may name it.
  TempDir dir;
  build(std::string(kSynthetic) + "[averaging]\n[checkpointer]\nplugin = \"torch\"\nbest_metric = \"avg.val_loss\"\n",
        {}, dir.path());
}

TEST(Averaging, BadKeysGivePositionedErrors) {
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\ndecay = 1.0\n"),
              HasSubstr("test.toml:13:9: 'averaging.decay' must be a float strictly between 0 and 1"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\ndecay = 1.5\n"), HasSubstr("test.toml:13:9"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\ndecy = 0.9\n"),
              HasSubstr("test.toml:13:1: unknown key 'decy' in [averaging]; did you mean 'decay'?"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\nevaluate = \"avg\"\n"),
              HasSubstr("'averaging.evaluate' must be one of both, average, raw"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averaging]\nstart_step = -1\n"), HasSubstr("test.toml:13:14"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[lookahead]\nalpha = 0.0\n"),
              HasSubstr("test.toml:13:9: 'lookahead.alpha' must be a float in (0, 1]"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[lookahead]\nk = 0\n"), HasSubstr("'lookahead.k' must be an integer >= 1"));
  EXPECT_THAT(bad_input(std::string(kSynthetic) + "[averagin]\n"), HasSubstr("did you mean [averaging]?"));
}

TEST(Averaging, AResumedRunsAverageAndSlowWeightsAreAnUninterruptedRunsBitForBit) {
  const std::string text = std::string(kSynthetic) +
                           "[averaging]\ndecay = 0.9\nstart_step = 7\n[lookahead]\nk = 4\nalpha = 0.5\n"
                           "[checkpointer]\nplugin = \"torch\"\nevery_steps = 5\n";
  TempDir dir;
  const std::string a = dir.path() + "/a", b = dir.path() + "/b";
  build(text, {}, a).engine->run();
  build(text, {"run.max_steps=30"}, b).engine->run();
  auto resumed = build(text, {"run.resume=true"}, b);
  EXPECT_EQ(resumed.engine->lookahead().steps_since_sync(), 30 % 4);
  EXPECT_TRUE(resumed.engine->weight_average().started());
  resumed.engine->run();
  expect_bit_identical(weights_in(a + "/avg/final_averaged_weights.pt"), weights_in(b + "/avg/final_averaged_weights.pt"));
  expect_bit_identical(weights_in(a + "/avg/final_weights.pt"), weights_in(b + "/avg/final_weights.pt"));
  auto ea = eval_lines(a + "/avg"), eb = eval_lines(b + "/avg");
  ASSERT_EQ(ea.back().at("step").as_int64(), 60);
  EXPECT_EQ(ea.back().at("avg.val_loss"), eb.back().at("avg.val_loss"));
}

TEST(Averaging, FinalAveragedWeightsAreWrittenAndHptEvalAveragedEvaluatesThem) {
  TempDir dir;
  auto b = build(std::string(kSynthetic) + "[averaging]\ndecay = 0.9\n[checkpointer]\nplugin = \"torch\"\n", {},
                 dir.path());
  auto s = b.engine->run();
  const std::string run = dir.path() + "/avg";
  auto averaged = weights_in(run + "/final_averaged_weights.pt");
  const auto& average = b.engine->weight_average().average();
  ASSERT_EQ(averaged.size(), average.size());  // the synthetic MLP has no buffers
  for (std::size_t p = 0; p < average.size(); ++p) {
    EXPECT_EQ(averaged[p].first, b.engine->layout().names[p]);
    EXPECT_TRUE(torch::equal(averaged[p].second, average[p])) << averaged[p].first;
  }
  for (const std::string& path : {run, run + "/checkpoints/latest"}) {
    auto r = run_hpt({"eval", path, "--averaged", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    auto metrics = boost::json::parse(r.out).as_object();
    EXPECT_NEAR(metrics.at("val_loss").as_double(), s.final_metrics.at("avg.val_loss"), 1e-6) << path;
    auto raw = run_hpt({"eval", path, "--json"});
    ASSERT_EQ(raw.code, 0) << raw.err;
    EXPECT_NEAR(boost::json::parse(raw.out).as_object().at("val_loss").as_double(), s.final_metrics.at("val_loss"),
                1e-6);
  }
  auto printed = run_hpt({"eval", run, "--averaged"});
  EXPECT_EQ(printed.code, 0);
  EXPECT_THAT(printed.out, HasSubstr("val_loss "));
  EXPECT_THAT(printed.err, HasSubstr("final_averaged_weights.pt"));

  // A run without [averaging] has nothing to evaluate that way.
  TempDir plain;
  build(kSynthetic, {}, plain.path()).engine->run();
  EXPECT_FALSE(std::filesystem::exists(plain.path() + "/avg/final_averaged_weights.pt"));
  auto r = run_hpt({"eval", plain.path() + "/avg", "--averaged"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("no [averaging] section"));
}

// ---------------------------------------------------------------------------------
// Lookahead

TEST(Lookahead, EveryKRealStepsTheWeightsBecomeTheSlowWeightsMovedAlphaTowardsThem) {
  // SGD without momentum keeps no state, so a run without Lookahead, given the same
  // weights, takes the same fast steps: theta_k comes from it.
  const double alpha = 0.25;
  auto la = build(std::string(kSynthetic) + "[lookahead]\nk = 3\nalpha = 0.25\n", {});
  auto ref = build(kSynthetic, {});
  Engine& e = *la.engine;
  Engine& r = *ref.engine;
  std::vector<torch::Tensor> slow = clone_all(e.parameters());  // phi_0: the initial weights
  for (std::size_t p = 0; p < slow.size(); ++p) ASSERT_TRUE(torch::equal(slow[p], r.parameters()[p]));
  for (int cycle = 0; cycle < 2; ++cycle) {
    for (int i = 0; i < 3; ++i) {
      e.real_step(hpt::StepKind::Full);
      r.real_step(hpt::StepKind::Full);
      if (i < 2)
        for (std::size_t p = 0; p < slow.size(); ++p)
          EXPECT_TRUE(torch::equal(e.parameters()[p], r.parameters()[p])) << "fast step " << i + 1;
    }
    // phi = phi + alpha * (theta_k - phi); theta = phi.
    for (std::size_t p = 0; p < slow.size(); ++p) {
      torch::Tensor theta = r.parameters()[p].to(torch::kFloat64);
      slow[p] = slow[p].to(torch::kFloat64) + alpha * (theta - slow[p].to(torch::kFloat64));
      EXPECT_TRUE(torch::allclose(e.parameters()[p].to(torch::kFloat64), slow[p], 1e-6, 1e-7))
          << "cycle " << cycle << ": " << e.layout().names[p];
      EXPECT_FALSE(torch::allclose(e.parameters()[p], r.parameters()[p])) << "no synchronisation";
      EXPECT_TRUE(torch::equal(e.lookahead().slow_weights()[p], e.parameters()[p]));
    }
    // The reference goes on from the synchronised weights.
    torch::NoGradGuard no_grad;
    for (std::size_t p = 0; p < slow.size(); ++p) r.parameters()[p].copy_(e.parameters()[p]);
    slow = clone_all(e.parameters());
  }
}

}  // namespace
