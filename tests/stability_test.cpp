// The stability-driven learning rate ([stability]) and the dynamic batch size
// ([batch_schedule]), the engine's own learning-rate factors: a synthetic task that
// diverges at a fixed lr finishes with [stability] and its lr rises while training is
// stable; a [batch_schedule] step accumulates k batches into the gradient of a k-times
// larger batch, at the declared steps, with its lr rule applied once; both resume to
// exactly the metrics of an uninterrupted run; bad keys exit 2 naming the key.
#include <cmath>
#include <sstream>

#include <boost/json.hpp>

#include "checkpoint/checkpoint_tools.hpp"
#include "config/batch_schedule_settings.hpp"
#include "config/stability_settings.hpp"
#include "test_support.hpp"

using hpt::host::Engine;
using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

const char* kSynthetic = R"(
[run]
name = "s"
seed = 3
max_steps = 60
eval_every = 0
[task]
plugin = "synthetic"
[optimizer]
plugin = "sgd"
lr = 0.05
)";

// SGD at this lr makes the synthetic task's loss grow without bound: the divergence monitor
// alone rolls back and cuts the lr (x0.5 each time) three times, then gives up.
constexpr const char* kDivergingLr = "optimizer.lr=30.0";

hpt::test::BuiltEngine build(const std::string& text, std::vector<std::string> overrides,
                             const std::string& runs_dir = "") {
  overrides.push_back("run.plugin_dirs=[\"" + std::string(HPT_TEST_PLUGIN_DIR) + "/engine\"]");
  return hpt::test::build_engine(text, overrides, runs_dir);
}

std::vector<boost::json::object> lines_of(const std::string& run_dir, const std::string& type) {
  std::vector<boost::json::object> lines;
  std::istringstream in(read_file(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) {
      auto o = boost::json::parse(line).as_object();
      if (o.at("type") == type.c_str()) lines.push_back(o);
    }
  return lines;
}

double number(const boost::json::value& v) { return v.is_null() ? std::nan("") : v.to_number<double>(); }

// The step lines of two runs agree exactly: loss, lr, gradient norm and passes.
void expect_same_steps(const std::string& a, const std::string& b) {
  auto sa = lines_of(a, "step"), sb = lines_of(b, "step");
  ASSERT_EQ(sa.size(), sb.size());
  ASSERT_FALSE(sa.empty());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].at("step"), sb[i].at("step"));
    for (const char* key : {"loss", "lr", "grad_norm"})
      EXPECT_EQ(number(sa[i].at(key)), number(sb[i].at(key))) << key << " at step " << sa[i].at("step");
    EXPECT_EQ(sa[i].at("backward"), sb[i].at("backward")) << "at step " << sa[i].at("step");
  }
}

// A run of `text` to `steps` in one go under `straight`, and to steps/2 then resumed to
// `steps` under `resumed`, with a checkpointer.
void run_straight_and_resumed(const std::string& text, std::int64_t steps, const std::string& straight,
                              const std::string& resumed, std::vector<std::string> overrides = {}) {
  const std::string with_checkpoints = text + "[checkpointer]\nplugin = \"torch\"\nevery_steps = 7\n";
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), overrides.begin(), overrides.end());
    return more;
  };
  const std::string max = "run.max_steps=" + std::to_string(steps);
  build(with_checkpoints, with({max}), straight).engine->run();
  build(with_checkpoints, with({"run.max_steps=" + std::to_string(steps / 2)}), resumed).engine->run();
  build(with_checkpoints, with({max, "run.resume=true"}), resumed).engine->run();
}

std::string bad_manifest(const std::string& text) {
  TempDir dir;
  auto r = run_hpt({"validate", dir.write("bad.toml", text)});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  return r.err;
}

// ---------------------------------------------------------------------------------
// [stability]

TEST(Stability, ATaskThatDivergesAtAFixedLrFinishesWithIt) {
  TempDir fixed_dir;
  auto fixed = build(kSynthetic, {kDivergingLr}, fixed_dir.path());
  EXPECT_THROW(fixed.engine->run(), hpt::RunError);

  TempDir dir;
  auto b = build(std::string(kSynthetic) + "[stability]\n", {kDivergingLr, "run.max_steps=100"}, dir.path());
  const hpt::host::RunSummary s = b.engine->run();
  EXPECT_EQ(s.status, "completed");
  EXPECT_EQ(s.steps, 100);
  ASSERT_TRUE(s.final_metrics.count("val_loss"));
  const double val_loss = s.final_metrics.at("val_loss");
  EXPECT_TRUE(std::isfinite(val_loss));
  // Sane: below what the untrained model scores.
  auto untrained = build(kSynthetic, {}).engine->evaluate();
  EXPECT_LT(val_loss, untrained.at("val_loss"));
  EXPECT_GT(b.engine->stability().cuts(), 0);
  const auto cuts = lines_of(dir.path() + "/s", "stability");
  ASSERT_FALSE(cuts.empty());
  EXPECT_EQ(cuts.front().at("action").as_string(), "cut");
  EXPECT_EQ(number(cuts.front().at("factor")), 0.5);
  EXPECT_LT(b.engine->stability().scale(), 1.0);
}

TEST(Stability, TheLrRisesWhileTrainingIsStableUpToMaxScale) {
  TempDir dir;
  auto b = build(std::string(kSynthetic) + "[stability]\ngrow = 1.1\ngrow_every = 5\nmax_scale = 1.5\n",
                 {"optimizer.lr=0.01"}, dir.path());
  b.engine->run();
  const auto steps = lines_of(dir.path() + "/s", "step");
  ASSERT_EQ(steps.size(), 60u);
  EXPECT_TRUE(lines_of(dir.path() + "/s", "stability").size() >= 5u);
  EXPECT_EQ(b.engine->stability().cuts(), 0) << "a stable run: no cut";
  // Steps 1-5 at the configured lr, x1.1 from step 6, x1.21 from step 11, ... capped at 1.5.
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const double expected = 0.01 * std::min(std::pow(1.1, static_cast<double>(i / 5)), 1.5);
    EXPECT_NEAR(number(steps[i].at("lr")), expected, 1e-12) << "step " << i + 1;
  }
  EXPECT_DOUBLE_EQ(b.engine->stability().scale(), 1.5);
  // The resolved manifest keeps the section with its defaults filled in, and is valid as it is.
  const std::string resolved = dir.path() + "/s/config.resolved.toml";
  EXPECT_THAT(read_file(resolved), HasSubstr("[stability]\ncut = 0.5"));
  EXPECT_THAT(read_file(resolved), HasSubstr("recovery = 5"));
  auto validated = run_hpt({"validate", resolved});
  EXPECT_EQ(validated.code, 0) << validated.err;
}

TEST(Stability, AResumedRunContinuesExactlyAsAnUninterruptedOne) {
  // Cuts and growth on both sides of the resume.
  TempDir straight, resumed;
  run_straight_and_resumed(std::string(kSynthetic) + "[stability]\ngrow = 1.3\ngrow_every = 3\nmax_scale = 50.0\n",
                           60, straight.path(), resumed.path(), {"optimizer.lr=0.3"});
  expect_same_steps(straight.path() + "/s", resumed.path() + "/s");
  auto changes = lines_of(straight.path() + "/s", "stability");
  bool cut_before = false, cut_after = false;
  for (const auto& c : changes) {
    if (c.at("action").as_string() != "cut") continue;
    (c.at("step").as_int64() <= 30 ? cut_before : cut_after) = true;
  }
  EXPECT_TRUE(cut_before && cut_after) << "the run should cut on both sides of step 30";
}

TEST(Stability, BadKeysExitTwoNamingTheKey) {
  EXPECT_THAT(bad_manifest(std::string(kSynthetic) + "[stability]\ngrow_evry = 5\n"),
              HasSubstr("unknown key 'grow_evry' in [stability]; did you mean 'grow_every'?"));
  EXPECT_THAT(bad_manifest(std::string(kSynthetic) + "[stability]\ncut = 1.0\n"),
              HasSubstr("'stability.cut' must be a float strictly between 0 and 1"));
  EXPECT_THAT(bad_manifest(std::string(kSynthetic) + "[stability]\nmax_scale = 0.5\n"), HasSubstr("stability.max_scale"));
  EXPECT_THAT(bad_manifest(std::string(kSynthetic) + "[stabilty]\n"), HasSubstr("did you mean [stability]?"));
}

// ---------------------------------------------------------------------------------
// [batch_schedule]

TEST(BatchSchedule, TheMultiplierChangesAtTheDeclaredSteps) {
  TempDir dir;
  auto b = build(std::string(kSynthetic) + "[batch_schedule]\nsteps = [3, 6]\nmultipliers = [2, 4]\n",
                 {"run.max_steps=8"}, dir.path());
  const auto s = b.engine->run();
  const auto steps = lines_of(dir.path() + "/s", "step");
  ASSERT_EQ(steps.size(), 8u);
  const std::vector<std::int64_t> expected = {1, 1, 1, 2, 2, 2, 4, 4};
  for (std::size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i].at("backward").as_int64(), expected[i]) << "step " << i + 1;
    EXPECT_EQ(steps[i].at("forward").as_int64(), expected[i]) << "step " << i + 1;
  }
  EXPECT_EQ(s.backward_passes, 17);
  EXPECT_EQ(s.real_steps, 8);
  const auto changes = lines_of(dir.path() + "/s", "batch_schedule");
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].at("step").as_int64(), 3);
  EXPECT_EQ(changes[0].at("multiplier").as_int64(), 2);
  EXPECT_EQ(changes[1].at("step").as_int64(), 6);
  EXPECT_EQ(changes[1].at("multiplier").as_int64(), 4);
  // The resolved manifest keeps the section, and is valid as it is.
  const std::string resolved = dir.path() + "/s/config.resolved.toml";
  EXPECT_THAT(read_file(resolved), HasSubstr("[batch_schedule]\nlr_rule = \"none\""));
  auto validated = run_hpt({"validate", resolved});
  EXPECT_EQ(validated.code, 0) << validated.err;
}

TEST(BatchSchedule, AnAccumulatedStepIsTheStepOfAKTimesLargerBatch) {
  // The synthetic task's batches are consecutive slices of one shuffled order: two batches
  // of 16 are the batch of 32, and the mean of their mean losses is its mean loss.
  auto accumulated = build(std::string(kSynthetic) + "[batch_schedule]\nsteps = [0]\nmultipliers = [2]\n",
                           {"task.batch_size=16"});
  auto large = build(kSynthetic, {"task.batch_size=32"});
  for (int step = 0; step < 3; ++step) {
    accumulated.engine->real_step(hpt::StepKind::Full);
    large.engine->real_step(hpt::StepKind::Full);
    EXPECT_NEAR(accumulated.engine->state().last_loss, large.engine->state().last_loss, 1e-6);
    const auto& a = accumulated.engine->parameters();
    const auto& l = large.engine->parameters();
    for (std::size_t p = 0; p < a.size(); ++p)
      EXPECT_TRUE(torch::allclose(a[p], l[p], 1e-5, 1e-6)) << accumulated.engine->layout().names[p] << " step "
                                                           << step + 1;
  }
  EXPECT_EQ(accumulated.engine->summary().backward_passes, 6);
  EXPECT_EQ(large.engine->summary().backward_passes, 3);
}

TEST(BatchSchedule, TheLrRuleIsAppliedOnceAndNotAgainOnResume) {
  for (const auto& [rule, factor] : std::vector<std::pair<std::string, double>>{
           {"none", 1.0}, {"linear", 2.0}, {"sqrt", std::sqrt(2.0)}}) {
    const std::string text = std::string(kSynthetic) + "[batch_schedule]\nsteps = [10, 40]\nmultipliers = [2, 4]\n" +
                             "lr_rule = \"" + rule + "\"\n";
    TempDir straight, resumed;
    run_straight_and_resumed(text, 60, straight.path(), resumed.path(), {"optimizer.lr=0.01"});
    // Resumed at step 30, after the first change and before the second.
    expect_same_steps(straight.path() + "/s", resumed.path() + "/s");
    const auto steps = lines_of(resumed.path() + "/s", "step");
    ASSERT_EQ(steps.size(), 60u);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const double expected = 0.01 * (i < 10 ? 1.0 : i < 40 ? factor : factor * factor);
      EXPECT_NEAR(number(steps[i].at("lr")), expected, 1e-12) << rule << ", step " << i + 1;
    }
  }
}

TEST(BatchSchedule, APredictedStepCountsAsOneStepEquivalent) {
  // The counting task with fixed forecasts: the multiplier follows the step count,
  // predicted steps included; a predicted step takes no batch.
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
[batch_schedule]
steps = [4]
multipliers = [3]
)";
  auto b = build(counting, {});
  Engine& e = *b.engine;
  e.real_step(hpt::StepKind::Full);
  e.real_step(hpt::StepKind::Full);
  EXPECT_EQ(e.summary().backward_passes, 2);
  ASSERT_EQ(e.predicted_phase(2), 2);
  EXPECT_EQ(e.state().step, 4);
  EXPECT_EQ(e.summary().backward_passes, 2);
  e.real_step(hpt::StepKind::Correct);  // step 5: after 4 step-equivalents, 3 batches
  EXPECT_EQ(e.batch_schedule().multiplier(), 3);
  EXPECT_EQ(e.summary().backward_passes, 5);
}

TEST(BatchSchedule, TwoRanksAccumulatingTwoBatchesOf32EqualOneRankOfBatch128) {
  // Data parallel: each batch's gradient is all-reduced and the two are summed. The ranks'
  // batches are slices of one global order, so the step sees the rows of one batch of 128.
  TempDir dir;
  auto manifest = [&](const std::string& name, int batch, const std::string& more) {
    return dir.write(name + ".toml", "[run]\nname = \"" + name + "\"\nseed = 4\nmax_steps = 20\neval_every = 0\n" +
                                         "runs_dir = \"" + dir.path() + "\"\n[task]\nplugin = \"synthetic\"\n" +
                                         "samples = 1024\nbatch_size = " + std::to_string(batch) +
                                         "\n[optimizer]\nplugin = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n" +
                                         "[backend]\nthreads = 1\n" + more);
  };
  const std::string one = manifest("one", 128, ""), two = manifest("two", 32, "[batch_schedule]\nsteps = [0]\n"
                                                                              "multipliers = [2]\n");
  ASSERT_EQ(hpt::test::run_to_end({"run", one, "--no-progress"}, dir.path() + "/one.log", 300), 0)
      << read_file(dir.path() + "/one.log");
  ASSERT_EQ(hpt::test::run_to_end({"run", two, "--nproc", "2", "--no-progress"}, dir.path() + "/two.log", 300), 0)
      << read_file(dir.path() + "/two.log");
  auto a = hpt::host::read_model_tensors(read_file(dir.path() + "/one/final_weights.pt"), "one");
  auto b = hpt::host::read_model_tensors(read_file(dir.path() + "/two/final_weights.pt"), "two");
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i].second, b[i].second, 1e-4, 1e-5))
        << a[i].first << ": max difference " << (a[i].second - b[i].second).abs().max().item<double>();
  const auto steps = lines_of(dir.path() + "/two", "step");
  ASSERT_EQ(steps.size(), 20u);
  EXPECT_EQ(steps.back().at("backward").as_int64(), 2);
}

TEST(BatchSchedule, BadKeysExitTwoNamingTheKey) {
  const std::string base = std::string(kSynthetic) + "[batch_schedule]\n";
  EXPECT_THAT(bad_manifest(base + "steps = [10, 5]\nmultipliers = [2, 4]\n"),
              HasSubstr("'batch_schedule.steps' must be strictly increasing (10 then 5), got ["));
  EXPECT_THAT(bad_manifest(base + "steps = [10]\nmultipliers = [2, 4]\n"),
              HasSubstr("'batch_schedule.multipliers' must have one entry per entry of 'batch_schedule.steps' (1 "
                        "entries), got ["));
  EXPECT_THAT(bad_manifest(base + "multipliers = [2]\n"), HasSubstr("'batch_schedule.steps' must list"));
  EXPECT_THAT(bad_manifest(base + "steps = [10]\nmultipliers = [0]\n"), HasSubstr("batch_schedule.multipliers"));
  EXPECT_THAT(bad_manifest(base + "steps = [10]\nmultipliers = [2]\nlr_rule = \"square\"\n"),
              HasSubstr("'batch_schedule.lr_rule' must be one of none, linear, sqrt"));
  EXPECT_THAT(bad_manifest(base + "step = [10]\n"), HasSubstr("unknown key 'step' in [batch_schedule]"));
}

TEST(StabilityDocs, TheManifestReferenceListsEveryKey) {
  const std::string doc = read_file(std::string(HPT_SOURCE_DIR) + "/docs/manifest.md");
  const std::size_t stability = doc.find("## [stability]"), batch = doc.find("## [batch_schedule]");
  ASSERT_NE(stability, std::string::npos);
  ASSERT_NE(batch, std::string::npos);
  for (const auto& spec : hpt::host::StabilitySettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |", stability), std::string::npos) << "[stability] key " << spec.name;
  for (const auto& spec : hpt::host::BatchScheduleSettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |", batch), std::string::npos) << "[batch_schedule] key " << spec.name;
}

}  // namespace
