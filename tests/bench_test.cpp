// `hpt bench`: bench manifest errors (position, expected, given; exit 2), command-line
// overrides, grid variants, `hpt validate` on a bench manifest, the live progress line,
// a tiny real suite on the synthetic task (interleaved order, the three outputs, resuming
// skips finished runs, "not run" in a report-only report), the speedup and budget-rule
// arithmetic and its headline, the pairwise speedups (every variant against every other)
// in the three outputs, and the HTML report rendered by headless Chromium.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include <boost/json.hpp>

#include "bench/bench_manifest.hpp"
#include "bench/bench_report.hpp"
#include "bench/bench_results.hpp"
#include "bench/run_progress.hpp"
#include "bench/svg_plot.hpp"
#include "test_support.hpp"

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
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) r.output.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

const char* kBase = R"(
[run]
name = "tiny"
max_steps = 60
eval_every = 10
target = { metric = "val_loss", value = 0.5 }

[task]
plugin = "synthetic"
hidden = [8]
samples = 256
val_samples = 128

[optimizer]
plugin = "sgd"
lr = 0.05
)";

std::string bench_text(const std::string& runs_dir, const std::string& extra = "") {
  return R"([bench]
name = "tiny"
base = "base.toml"
seeds = [0, 1]
baseline = "full"
runs_dir = ")" + runs_dir + R"("
)" + extra + R"(
[[variant]]
name = "full"
overrides = ["optimizer.lr=0.05"]

[[variant]]
name = "hybrid"
[variant.set]
"dynamics.plugin" = "linear"
correction.plugin = "residual"
phase = { plugin = "adaptive", warmup_steps = 10 }
)";
}

// ---------------------------------------------------------------------------------
// Bad bench manifests

class BadBench : public ::testing::Test {
 protected:
  std::string write_bench(const std::string& text) {
    dir.write("base.toml", kBase);
    return dir.write("bench.toml", text);
  }
  // A one-variant bench whose target (line 5) ends with `extra`; `expected` is the error after "path:5:".
  void expect_bad_target(const std::string& extra, const std::string& expected) {
    std::string path = write_bench("[bench]\nbase = \"base.toml\"\nseeds = [0]\nbaseline = \"a\"\n"
                                   "target = { metric = \"val_loss\", value = 0.5, " + extra +
                                   " }\n[[variant]]\nname = \"a\"\n");
    auto r = run_hpt({"bench", path});
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr(path + ":5:" + expected));
  }
  TempDir dir;
};

TEST_F(BadBench, UnknownKeyGivesPositionAndClosestName) {
  std::string path = write_bench("[bench]\nbase = \"base.toml\"\nseed = [0]\nbaseline = \"a\"\n[[variant]]\nname = \"a\"\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":3:1: unknown key 'seed' in [bench]; did you mean 'seeds'?"));
  EXPECT_THAT(r.err, HasSubstr("[bench] needs 'seeds = [0, 1, 2, 3, 4]'"));
}

TEST_F(BadBench, UnknownVariantKeyGivesPositionAndClosestName) {
  std::string path = write_bench("[bench]\nbase = \"base.toml\"\nseeds = [0]\nbaseline = \"a\"\n[[variant]]\nname = \"a\"\noverride = []\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":7:1: unknown key 'override' in [[variant]]; did you mean 'overrides'?"));
}

TEST_F(BadBench, WrongTypeNamesExpectedAndGiven) {
  std::string path = write_bench("[bench]\nbase = \"base.toml\"\nseeds = \"0\"\nbaseline = \"a\"\nbudget = 0\n[[variant]]\nname = \"a\"\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":3:9: 'bench.seeds' must be a non-empty array of integers >= 0, like [0, 1, 2, 3, 4], got a string \"0\""));
  EXPECT_THAT(r.err, HasSubstr(path + ":5:10: 'bench.budget' must be an integer >= 1, got an integer 0"));
}

TEST_F(BadBench, TargetStopMustBeABoolean) {
  expect_bad_target("stop = \"no\"", "53: 'bench.target.stop' must be true or false, got a string \"no\"");
}

TEST_F(BadBench, TargetMinStepsMustBeANonNegativeInteger) {
  expect_bad_target("min_steps = -5",
                    "58: 'bench.target.min_steps' must be an integer >= 0, got an integer -5");
}

TEST_F(BadBench, BaselineMustNameAVariant) {
  std::string text = bench_text(dir.path() + "/out");
  text.replace(text.find("baseline = \"full\""), 17, "baseline = \"flul\"");
  std::string path = write_bench(text);
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":5:12: 'bench.baseline' must name a variant, got \"flul\"; did you mean \"full\"? (variants: full, hybrid)"));
}

TEST_F(BadBench, DuplicateVariantNamesAndEmptySeeds) {
  std::string path = write_bench(
      "[bench]\nbase = \"base.toml\"\nseeds = []\nbaseline = \"a\"\n[[variant]]\nname = \"a\"\n[[variant]]\nname = \"a\"\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":8:8: variant name 'a' is used twice (first at " + path + ":5:1)"));
  EXPECT_THAT(r.err, HasSubstr("'bench.seeds' must be a non-empty array"));
}

TEST_F(BadBench, MissingBaseFileIsReported) {
  std::string path = write_bench("[bench]\nbase = \"nope.toml\"\nseeds = [0]\nbaseline = \"a\"\n[[variant]]\nname = \"a\"\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":2:8: 'bench.base' names no file: "));
}

TEST_F(BadBench, BadVariantOverrideNamesTheVariant) {
  std::string text = bench_text(dir.path() + "/out");
  text += "\n[[variant]]\nname = \"typo\"\noverrides = ['optimizer.lr=\"fast\"', 'dynamics.plugin=\"linaer\"']\n";
  std::string path = write_bench(text);
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":19:1: variant 'typo' (seed 0): "));
  EXPECT_THAT(r.err, HasSubstr("override 'optimizer.lr=\"fast\"'"));
  EXPECT_THAT(r.err, HasSubstr("'optimizer.lr' must be a float"));
  EXPECT_THAT(r.err, HasSubstr("linaer"));
  EXPECT_FALSE(fs::exists(dir.path() + "/out"));  // nothing ran
}

TEST_F(BadBench, VariantCannotSetWhatTheBenchOwns) {
  std::string text = bench_text(dir.path() + "/out");
  text += "\n[[variant]]\nname = \"cheat\"\noverrides = [\"run.max_steps=5\"]\n";
  std::string path = write_bench(text);
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":21:14: variant 'cheat': 'run.max_steps' cannot be set by a variant: "
                                      "run.max_steps is set by bench.budget"));
}

TEST_F(BadBench, SyntaxErrorGivesPosition) {
  std::string path = write_bench("[bench]\nseeds = [0,\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":2:13"));
  EXPECT_THAT(r.err, HasSubstr("TOML syntax error"));
}

// ---------------------------------------------------------------------------------
// Command-line overrides, grid variants, `hpt validate` on a bench manifest

class BenchPlan : public ::testing::Test {
 protected:
  std::string write_bench(const std::string& text) {
    dir.write("base.toml", kBase);
    return dir.write("bench.toml", text);
  }
  static double lr_of(const hpt::host::PlannedRun& run) {
    return run.resolved.at(hpt::PluginKind::Optimizer).options.get_float("lr");
  }
  TempDir dir;
};

TEST_F(BenchPlan, OverridesChangeTheBenchAndTheRunOfEveryVariant) {
  std::string path = write_bench(bench_text(dir.path() + "/out"));
  auto bench = hpt::host::load_bench_manifest(
      path, {"bench.seeds=[3, 4, 5]", "run.max_steps=20", "optimizer.lr=0.01", "run.eval_every=5",
             "bench.runs_dir=\"" + dir.path() + "/elsewhere\""});
  EXPECT_EQ(bench.seeds, (std::vector<std::int64_t>{3, 4, 5}));
  EXPECT_EQ(bench.budget, 20);  // run.max_steps means bench.budget
  EXPECT_EQ(bench.runs_dir, dir.path() + "/elsewhere");
  auto runs = hpt::host::plan_runs(bench);
  ASSERT_EQ(runs.size(), 6u);
  for (const auto& r : runs) {
    EXPECT_EQ(r.resolved.run.max_steps, 20);
    EXPECT_EQ(r.resolved.run.eval_every, 5);
    EXPECT_EQ(r.run_dir, dir.path() + "/elsewhere/runs/" + r.name);
    // The variant that sets optimizer.lr keeps its own; the other gets the command line's.
    EXPECT_DOUBLE_EQ(lr_of(r), r.variant == "full" ? 0.05 : 0.01) << r.name;
  }
  EXPECT_EQ(runs[0].name, "full-s3");
  EXPECT_EQ(runs[5].name, "hybrid-s5");
}

TEST_F(BenchPlan, ABadOverrideKeyIsNamed) {
  std::string path = write_bench(bench_text(dir.path() + "/out"));
  auto unknown = run_hpt({"bench", path, "bench.sedes=[0]"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("override 'bench.sedes=[0]': unknown key 'sedes' in [bench]; did you mean 'seeds'?"));
  auto wrong = run_hpt({"bench", path, "bench.seeds=\"all\""});
  EXPECT_EQ(wrong.code, 2);
  EXPECT_THAT(wrong.err, HasSubstr("override 'bench.seeds=\"all\"': 'bench.seeds' must be a non-empty array"));
  auto run_key = run_hpt({"bench", path, "optimizer.lrr=0.1"});
  EXPECT_EQ(run_key.code, 2);
  EXPECT_THAT(run_key.err, HasSubstr("the command line's run overrides do not apply to " + dir.path() + "/base.toml"));
  EXPECT_THAT(run_key.err, HasSubstr("override 'optimizer.lrr=0.1'"));
  EXPECT_THAT(run_key.err, HasSubstr("did you mean 'lr'?"));
  EXPECT_EQ(run_key.err.find("variant"), std::string::npos) << "reported once, not per variant: " << run_key.err;
  auto owned = run_hpt({"bench", path, "run.seed=3"});
  EXPECT_EQ(owned.code, 2);
  EXPECT_THAT(owned.err, HasSubstr("override 'run.seed=3': 'run.seed' cannot be overridden in a bench: run.seed is set by bench.seeds"));
  auto variant = run_hpt({"bench", path, "variant.name=x"});
  EXPECT_EQ(variant.code, 2);
  EXPECT_THAT(variant.err, HasSubstr("override 'variant.name=x': 'variant.name': variants cannot be changed from the command line"));
  auto bare = run_hpt({"bench", path, "seeds"});
  EXPECT_EQ(bare.code, 2);
  EXPECT_THAT(bare.err, HasSubstr("unexpected argument 'seeds' (overrides look like key.path=value)"));
  EXPECT_FALSE(fs::exists(dir.path() + "/out"));  // nothing ran
}

TEST_F(BenchPlan, AGridExpandsToOneVariantPerCombination) {
  std::string path = write_bench(R"([bench]
base = "base.toml"
seeds = [0]
baseline = "plain"
runs_dir = ")" + dir.path() + R"(/out"

[[variant]]
name = "plain"

[[variant]]
name = "sgd"
overrides = ["run.eval_every=20"]
grid = { "optimizer.momentum" = [0.0, 0.9], "optimizer.lr" = [0.01, 0.03, 0.1] }
)");
  auto bench = hpt::host::load_bench_manifest(path);
  std::vector<std::string> names;
  for (const auto& v : bench.variants) names.push_back(v.name);
  // The file's key order (momentum first, turning slowest), each key's last part and value.
  EXPECT_EQ(names, (std::vector<std::string>{"plain", "sgd-momentum0.0-lr0.01", "sgd-momentum0.0-lr0.03",
                                             "sgd-momentum0.0-lr0.1", "sgd-momentum0.9-lr0.01",
                                             "sgd-momentum0.9-lr0.03", "sgd-momentum0.9-lr0.1"}));
  auto runs = hpt::host::plan_runs(bench);
  ASSERT_EQ(runs.size(), 7u);
  const double lrs[] = {0.01, 0.03, 0.1};
  for (std::size_t i = 1; i < runs.size(); ++i) {
    const auto& opt = runs[i].resolved.at(hpt::PluginKind::Optimizer).options;
    EXPECT_EQ(runs[i].name, names[i] + "-s0");
    EXPECT_EQ(runs[i].run_dir, dir.path() + "/out/runs/" + names[i] + "-s0");
    EXPECT_DOUBLE_EQ(opt.get_float("momentum"), i <= 3 ? 0.0 : 0.9) << runs[i].name;
    EXPECT_DOUBLE_EQ(opt.get_float("lr"), lrs[(i - 1) % 3]) << runs[i].name;
    EXPECT_EQ(runs[i].resolved.run.eval_every, 20);  // the variant's own overrides too
  }
  EXPECT_DOUBLE_EQ(lr_of(runs[0]), 0.05);  // the base's
}

TEST_F(BenchPlan, AVariantCanPutTheTargetOnItsAveragedMetric) {
  std::string path = write_bench(R"([bench]
base = "base.toml"
seeds = [0, 1]
baseline = "plain"
runs_dir = ")" + dir.path() + R"(/out"

[[variant]]
name = "plain"

[[variant]]
name = "ema"
overrides = ['averaging.evaluate="average"']
target_metric = "avg.val_loss"
grid = { "averaging.decay" = [0.9, 0.99] }
)");
  auto runs = hpt::host::plan_runs(hpt::host::load_bench_manifest(path));
  ASSERT_EQ(runs.size(), 6u);
  for (const auto& r : runs) {
    ASSERT_TRUE(r.resolved.run.target.has_value());
    // The same target value on the metric each variant evaluates.
    EXPECT_EQ(r.resolved.run.target->metric, r.variant == "plain" ? "val_loss" : "avg.val_loss") << r.name;
    EXPECT_DOUBLE_EQ(r.resolved.run.target->value, 0.5);
  }
  auto wrong = run_hpt({"validate", write_bench("[bench]\nbase = \"base.toml\"\nseeds = [0]\nbaseline = \"a\"\n"
                                                "[[variant]]\nname = \"a\"\ntarget_metric = 3\n")});
  EXPECT_EQ(wrong.code, 2);
  EXPECT_THAT(wrong.err, HasSubstr("variant.target_metric"));
}

TEST_F(BenchPlan, PathsAVariantSetsAreRelativeToTheBenchFileAndTheCommandLinesToTheWorkingDirectory) {
  dir.write("base.toml", kBase);
  std::string path = dir.write("suite/bench.toml", R"([bench]
base = "../base.toml"
seeds = [0]
baseline = "plain"
runs_dir = ")" + dir.path() + R"(/out"

[[variant]]
name = "plain"

[[variant]]
name = "warm"
overrides = ['task.init_from="weights/w.pt"', "optimizer.lr=0.01"]
)");
  auto bench = hpt::host::load_bench_manifest(path, {"task.init_from=\"cli.pt\""});
  auto runs = hpt::host::plan_runs(bench);
  ASSERT_EQ(runs.size(), 2u);
  auto init_from = [](const hpt::host::PlannedRun& r) {
    return r.resolved.at(hpt::PluginKind::Task).options.get_string("init_from");
  };
  // The variant's: beside the bench file, in the resolved run and in what the child is given.
  EXPECT_EQ(init_from(runs[1]), dir.path() + "/suite/weights/w.pt");
  EXPECT_THAT(runs[1].overrides, ::testing::Contains("task.init_from=\"" + dir.path() + "/suite/weights/w.pt\""));
  EXPECT_THAT(runs[1].overrides, ::testing::Contains("optimizer.lr=0.01"));  // not a path: as given
  // The command line's (the variant that does not set it): the working directory's.
  EXPECT_EQ(init_from(runs[0]), (fs::current_path() / "cli.pt").lexically_normal().string());
}

TEST_F(BenchPlan, GridNamesUseWholePathsForKeysThatEndAlikeAndStringsAlone) {
  std::string path = write_bench("[bench]\nbase = \"base.toml\"\nseeds = [0]\nbaseline = \"g-optimizer.lr0.01-dynamics.lr0.5-full\"\n"
                                 "[[variant]]\nname = \"g\"\n"
                                 "grid = { optimizer = { lr = [0.01] }, \"dynamics.lr\" = [0.5], \"phase.plugin\" = [\"full\", \"adaptive\"] }\n");
  // Names only (plan_runs would report that dynamics "none" has no option lr).
  auto bench = hpt::host::load_bench_manifest(path);
  ASSERT_EQ(bench.variants.size(), 2u);
  EXPECT_EQ(bench.variants[0].name, "g-optimizer.lr0.01-dynamics.lr0.5-full");
  EXPECT_EQ(bench.variants[1].name, "g-optimizer.lr0.01-dynamics.lr0.5-adaptive");
  EXPECT_EQ(bench.variants[1].overrides,
            (std::vector<std::string>{"optimizer.lr=0.01", "dynamics.lr=0.5", "phase.plugin=\"adaptive\""}));
}

TEST_F(BenchPlan, BadGridsArePositioned) {
  std::string path = write_bench("[bench]\nbase = \"base.toml\"\nseeds = [0]\nbaseline = \"a\"\n[[variant]]\nname = \"a\"\n"
                                 "grid = { \"optimizer.lr\" = 0.1, \"run.seed\" = [1, 2] }\n");
  auto r = run_hpt({"bench", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":7:27: 'variant.grid.optimizer.lr' must be a non-empty array of the values to try"));
  EXPECT_THAT(r.err, HasSubstr(path + ":7:45: variant 'a': 'run.seed' cannot be set by a variant"));
}

TEST_F(BenchPlan, ValidateChecksABenchManifestAndEveryVariant) {
  std::string path = write_bench(bench_text(dir.path() + "/out"));
  auto ok = run_hpt({"validate", path, "bench.seeds=[0,1,2]"});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("# bench tiny: 2 variants x 3 seeds = 6 runs into " + dir.path() + "/out"));
  EXPECT_THAT(ok.out, HasSubstr("variant full: optimizer.lr=0.05"));
  EXPECT_THAT(ok.out, HasSubstr("variant hybrid: correction.plugin=\"residual\""));
  EXPECT_THAT(ok.out, HasSubstr("# " + path + " is a valid bench manifest (6 runs resolved)"));
  EXPECT_FALSE(fs::exists(dir.path() + "/out"));  // validating runs nothing

  // A bench key (file:line:column) and a variant whose run manifest does not resolve.
  std::string text = bench_text(dir.path() + "/out");
  text.replace(text.find("seeds = [0, 1]"), 14, "seeds = [0, -1]");
  text += "\n[[variant]]\nname = \"typo\"\n[variant.set]\n\"optimizer.lr\" = \"fast\"\n";
  std::string bad = dir.write("bad.toml", text);
  auto r = run_hpt({"validate", bad});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(bad + ":4:13: 'bench.seeds' must be an array of integers >= 0 (an element), got an integer -1"));
  text.replace(text.find("seeds = [0, -1]"), 15, "seeds = [0, 1]");
  dir.write("bad.toml", text);
  r = run_hpt({"validate", bad});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(bad + ":19:1: variant 'typo' (seed 0): "));
  EXPECT_THAT(r.err, HasSubstr("'optimizer.lr' must be a float"));
}

TEST(BenchManifests, ShippedBenchManifestsAreValid) {
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(std::string(HPT_SOURCE_DIR) + "/bench")) {
    if (entry.path().extension() != ".toml") continue;
    auto r = run_hpt({"validate", entry.path().string()});
    EXPECT_EQ(r.code, 0) << entry.path() << ": " << r.err;
    // bench/ holds tune manifests too (bench/tune_fm16.toml, checked by tune_test).
    EXPECT_THAT(r.out, ::testing::AnyOf(HasSubstr("is a valid bench manifest"), HasSubstr("is a valid tune manifest")));
    ++checked;
  }
  EXPECT_GE(checked, 2);  // quickstart and fm16
}

// ---------------------------------------------------------------------------------
// The live progress line

TEST(RunProgress, FollowsTheMetricsFileAsItGrows) {
  TempDir dir;
  std::string path = dir.path() + "/metrics.jsonl";
  hpt::host::MetricGoal target;
  target.metric = "val_loss";
  target.value = 0.5;
  target.maximize = false;
  hpt::host::RunProgress p(path, 100, target);
  EXPECT_FALSE(p.poll());  // no file yet
  EXPECT_FALSE(p.started());
  std::ofstream out(path);
  out << R"({"type":"step","step":10,"kind":"full","loss":1.25,"lr":0.1,"train_seconds":0.5})" << "\n"
      << R"({"type":"step","step":20,"kind":"full","loss":1.0,"lr":0.1,"train_seconds":1.0})" << "\n"
      << R"({"type":"step","step":30,"kind":"full","lo)" << std::flush;  // a line being written
  EXPECT_TRUE(p.poll());
  EXPECT_EQ(p.step(), 20);
  EXPECT_EQ(p.line(false), "step 20/100  20.0 steps/s  loss 1.0000");
  out << R"(ss":0.75,"train_seconds":1.5})" << "\n"
      << R"({"type":"eval","step":30,"train_seconds":1.5,"val_loss":0.8,"val_accuracy":0.6})" << "\n" << std::flush;
  EXPECT_TRUE(p.poll());
  EXPECT_EQ(p.line(false), "step 30/100  20.0 steps/s  loss 0.7500  val_loss 0.8 @30");
  EXPECT_FALSE(p.projected_target_step().has_value());  // one evaluation: no trend yet
  out << R"({"type":"step","step":40,"kind":"predicted","forecast_loss":0.1,"train_seconds":1.6})" << "\n"
      << R"({"type":"eval","step":40,"train_seconds":1.6,"val_loss":0.7})" << "\n" << std::flush;
  EXPECT_TRUE(p.poll());
  EXPECT_FALSE(p.poll());  // nothing new
  EXPECT_EQ(p.line(false), "step 40/100  25.0 steps/s  loss 0.7500  val_loss 0.7 @40");  // a forecast is no loss
  ASSERT_TRUE(p.projected_target_step().has_value());
  EXPECT_NEAR(*p.projected_target_step(), 60.0, 1e-9);  // 0.1 down per 10 steps: 0.5 at step 60
  EXPECT_EQ(p.evals(), 2u);
}

TEST(RunProgress, TheTargetTrendRespectsMinStepsAndDirection) {
  TempDir dir;
  std::string path = dir.path() + "/metrics.jsonl";
  hpt::host::MetricGoal target;
  target.metric = "val_accuracy";
  target.value = 0.9;
  target.min_steps = 500;
  hpt::host::RunProgress p(path, 1000, target);
  std::ofstream out(path);
  out << R"({"type":"eval","step":100,"val_accuracy":0.7})" << "\n"
      << R"({"type":"eval","step":200,"val_accuracy":0.8})" << "\n" << std::flush;
  p.poll();
  EXPECT_NEAR(*p.projected_target_step(), 500.0, 1e-9);  // 0.9 at step 300, but not before min_steps
  out << R"({"type":"eval","step":300,"val_accuracy":0.6})" << "\n"
      << R"({"type":"eval","step":400,"val_accuracy":0.5})" << "\n" << std::flush;
  p.poll();
  // The last four: 0.7, 0.8, 0.6, 0.5: falling, away from the target.
  EXPECT_FALSE(p.projected_target_step().has_value());
  EXPECT_EQ(p.line(false), "step 400/1000  val_accuracy 0.5 @400");
}

// ---------------------------------------------------------------------------------
// Scoring

boost::json::object summary(std::optional<double> seconds_to_target, double train_seconds, std::int64_t steps,
                            std::int64_t max_steps, std::int64_t backward_passes) {
  boost::json::object o;
  o["status"] = seconds_to_target ? "target_reached" : "completed";
  o["steps"] = steps;
  o["max_steps"] = max_steps;
  o["train_seconds"] = train_seconds;
  o["backward_passes"] = backward_passes;
  o["seconds_to_target"] = seconds_to_target ? boost::json::value(*seconds_to_target) : nullptr;
  o["steps_to_target"] = seconds_to_target ? boost::json::value(steps) : nullptr;
  o["backward_passes_to_target"] = seconds_to_target ? boost::json::value(backward_passes) : nullptr;
  return o;
}

hpt::host::RunRecord record(const std::string& variant, std::int64_t seed, boost::json::object s) {
  hpt::host::RunRecord r;
  r.variant = variant;
  r.seed = seed;
  r.finished = true;
  r.summary = std::move(s);
  return r;
}

TEST(BenchScore, ReachedRunsScoreTheirFiguresToTarget) {
  auto s = hpt::host::score_run(summary(12.5, 12.5, 300, 1000, 280));
  EXPECT_TRUE(s.reached);
  EXPECT_DOUBLE_EQ(s.seconds, 12.5);
  EXPECT_DOUBLE_EQ(s.steps, 300);
  EXPECT_DOUBLE_EQ(s.backward_passes, 280);
}

TEST(BenchScore, MissedRunsCountAsTwiceTheBudget) {
  // Ran the whole budget: 2 x its time, 2 x the budget in steps.
  auto full = hpt::host::score_run(summary(std::nullopt, 30.0, 1000, 1000, 600));
  EXPECT_FALSE(full.reached);
  EXPECT_DOUBLE_EQ(full.steps, 2000);
  EXPECT_DOUBLE_EQ(full.seconds, 60.0);
  EXPECT_DOUBLE_EQ(full.backward_passes, 1200);
  // Stopped at a quarter of the budget (early stopping): its time scaled to the budget, doubled.
  auto early = hpt::host::score_run(summary(std::nullopt, 10.0, 250, 1000, 200));
  EXPECT_DOUBLE_EQ(early.steps, 2000);
  EXPECT_DOUBLE_EQ(early.seconds, 80.0);
  EXPECT_DOUBLE_EQ(early.backward_passes, 1600);
}

TEST(BenchScore, SpeedupIsComputedSeedBySeedThenSummarised) {
  std::vector<hpt::host::RunRecord> runs = {
      record("base", 0, summary(10.0, 10.0, 100, 200, 100)),
      record("fast", 0, summary(4.0, 4.0, 100, 200, 40)),       // 10 / 4 = 2.5
      record("base", 1, summary(std::nullopt, 20.0, 200, 200, 200)),  // missed: 40
      record("fast", 1, summary(8.0, 8.0, 100, 200, 40)),       // 40 / 8 = 5
      record("base", 2, summary(30.0, 30.0, 150, 200, 150)),
      record("fast", 2, summary(std::nullopt, 12.0, 100, 200, 50)),  // missed, stopped at half: 48; 30 / 48
      record("fast", 3, summary(1.0, 1.0, 10, 200, 5)),         // no baseline at seed 3: left out
  };
  auto s = hpt::host::speedups(runs, "base", "fast");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_DOUBLE_EQ(s[0], 2.5);
  EXPECT_DOUBLE_EQ(s[1], 5.0);
  EXPECT_DOUBLE_EQ(s[2], 30.0 / 48.0);
  auto stats = hpt::host::variant_stats(runs, "fast", "base", "val_accuracy");
  EXPECT_EQ(stats.runs, 4u);
  EXPECT_EQ(stats.reached, 3u);
  EXPECT_DOUBLE_EQ(stats.speedup.median, 2.5);
  EXPECT_DOUBLE_EQ(stats.speedup.min, 30.0 / 48.0);
  EXPECT_DOUBLE_EQ(stats.speedup.max, 5.0);
  EXPECT_DOUBLE_EQ(stats.seconds.median, (4.0 + 8.0) / 2);  // of 1, 4, 8, 48
}

TEST(BenchScore, MetricAtAStepIsTheFirstEvaluationAtOrAfterIt) {
  auto with_evals = [](const std::string& variant, std::vector<std::pair<std::int64_t, double>> evals) {
    hpt::host::RunRecord r = record(variant, 0, summary(std::nullopt, 10.0, 1000, 1000, 1000));
    for (const auto& [step, accuracy] : evals) r.evals.push_back({{"step", step}, {"val_accuracy", accuracy}});
    return r;
  };
  std::vector<hpt::host::RunRecord> runs = {
      with_evals("a", {{200, 0.5}, {400, 0.6}, {613, 0.7}, {800, 0.8}}),
      with_evals("a", {{200, 0.4}, {600, 0.9}}),
      with_evals("a", {{200, 0.3}}),  // never got there: left out
  };
  EXPECT_EQ(hpt::host::metric_at_step(runs[0], "val_accuracy", 600), 0.7);
  EXPECT_EQ(hpt::host::metric_at_step(runs[0], "val_accuracy", 400), 0.6);
  EXPECT_FALSE(hpt::host::metric_at_step(runs[2], "val_accuracy", 600).has_value());
  EXPECT_FALSE(hpt::host::metric_at_step(runs[0], "val_loss", 200).has_value());
  auto stats = hpt::host::variant_stats(runs, "a", "a", "val_accuracy", 600);
  EXPECT_EQ(stats.metric_at_step.count, 2u);
  EXPECT_DOUBLE_EQ(stats.metric_at_step.median, 0.8);
  EXPECT_EQ(hpt::host::variant_stats(runs, "a", "a", "val_accuracy").metric_at_step.count, 0u);
}

TEST(BenchReport, NumbersAreShortButStepCountsStayWhole) {
  EXPECT_EQ(hpt::host::short_number(0.89512), "0.8951");
  EXPECT_EQ(hpt::host::short_number(196.153), "196.2");
  EXPECT_EQ(hpt::host::short_number(9200), "9200");
  EXPECT_EQ(hpt::host::short_number(11600), "11600");
  EXPECT_EQ(hpt::host::short_number(13960.4), "13960");
  EXPECT_EQ(hpt::host::short_number(-25000), "-25000");
}

TEST(BenchReport, TheHeadlineSaysFasterOrSlowerAndOverHowManySeeds) {
  std::vector<hpt::host::RunRecord> runs = {
      record("base", 0, summary(10.0, 10.0, 100, 200, 100)), record("fast", 0, summary(4.0, 4.0, 100, 200, 40)),
      record("slow", 0, summary(20.0, 20.0, 100, 200, 40)),  record("base", 1, summary(10.0, 10.0, 100, 200, 100)),
      record("fast", 1, summary(5.0, 5.0, 100, 200, 40)),    record("slow", 1, summary(12.5, 12.5, 100, 200, 40)),
      record("base", 2, summary(9.0, 9.0, 100, 200, 100)),   record("fast", 2, summary(5.0, 5.0, 100, 200, 40)),
      record("slow", 2, summary(15.0, 15.0, 100, 200, 40)),
  };
  // fast: 10/4, 10/5, 9/5 -> median 2; slow: 10/20, 10/12.5, 9/15 -> median 0.6: 1/0.6 = 1.67x slower.
  auto fast = hpt::host::variant_stats(runs, "fast", "base", "val_loss");
  auto slow = hpt::host::variant_stats(runs, "slow", "base", "val_loss");
  EXPECT_EQ(hpt::host::speedup_headline(fast, "base", 3), "2.00x faster than base (median of 3 seeds)");
  EXPECT_EQ(hpt::host::speedup_headline(slow, "base", 3), "1.67x slower than base (median of 3 seeds)");
  EXPECT_EQ(hpt::host::speedup_headline(fast, "base", 5), "2.00x faster than base (median of 3 of 5 seeds)");
  auto same = hpt::host::variant_stats(runs, "base", "base", "val_loss");
  EXPECT_EQ(hpt::host::speedup_headline(same, "base", 3), "as fast as base (median of 3 seeds)");
  runs.resize(3);
  auto one = hpt::host::variant_stats(runs, "fast", "base", "val_loss");
  EXPECT_EQ(hpt::host::speedup_headline(one, "base", 1), "2.50x faster than base (1 seed)");
  EXPECT_EQ(hpt::host::speedup_headline(hpt::host::VariantStats{}, "base", 3),
            "no seed where both it and base ran to the end");
}

// Three variants at four seeds: a and b both finish at seeds 0 and 1 (b 2x and 4x faster
// in time, 3x and 2x fewer backward passes); at seed 2 b did not finish; at seed 3 only a
// and c ran (c 3x faster, 9x fewer backward passes).
std::vector<hpt::host::RunRecord> pairwise_runs() {
  hpt::host::RunRecord b_unfinished = record("b", 2, summary(1.0, 1.0, 10, 100, 5));
  b_unfinished.finished = false;  // its figures would make a ratio if they counted
  return {
      record("a", 0, summary(8.0, 8.0, 80, 100, 60)),  record("b", 0, summary(4.0, 4.0, 40, 100, 20)),
      record("a", 1, summary(std::nullopt, 10.0, 100, 100, 50)),  // missed: 20 s, 100 backward passes
      record("b", 1, summary(5.0, 5.0, 50, 100, 50)),  record("a", 2, summary(7.0, 7.0, 70, 100, 70)),
      b_unfinished,                                    record("a", 3, summary(9.0, 9.0, 90, 100, 90)),
      record("c", 3, summary(3.0, 3.0, 30, 100, 10)),
  };
}

TEST(BenchScore, PairwiseSpeedupsAreTakenSeedBySeedForEveryOrderedPair) {
  using hpt::host::TargetMeasure;
  auto runs = pairwise_runs();
  EXPECT_EQ(hpt::host::pair_ratios(runs, "b", "a", TargetMeasure::Seconds), (std::vector<double>{2.0, 4.0}));
  EXPECT_EQ(hpt::host::pair_ratios(runs, "a", "b", TargetMeasure::Seconds), (std::vector<double>{0.5, 0.25}));
  EXPECT_EQ(hpt::host::pair_ratios(runs, "b", "a", TargetMeasure::BackwardPasses), (std::vector<double>{3.0, 2.0}));
  // speedups() against a baseline is the same ratio.
  EXPECT_EQ(hpt::host::speedups(runs, "a", "b"), hpt::host::pair_ratios(runs, "b", "a", TargetMeasure::Seconds));

  auto time = hpt::host::pairwise_speedups(runs, {"a", "b", "c"}, TargetMeasure::Seconds);
  std::vector<std::pair<std::string, std::string>> order;
  for (const auto& p : time) order.emplace_back(p.variant, p.against);
  EXPECT_EQ(order, (std::vector<std::pair<std::string, std::string>>{
                       {"a", "b"}, {"a", "c"}, {"b", "a"}, {"b", "c"}, {"c", "a"}, {"c", "b"}}));
  const auto& b_vs_a = time[2].ratio;
  EXPECT_EQ(b_vs_a.count, 2u);
  EXPECT_DOUBLE_EQ(b_vs_a.median, 3.0);
  EXPECT_DOUBLE_EQ(b_vs_a.min, 2.0);
  EXPECT_DOUBLE_EQ(b_vs_a.max, 4.0);
  const auto& a_vs_b = time[0].ratio;
  EXPECT_EQ(a_vs_b.count, 2u);
  EXPECT_DOUBLE_EQ(a_vs_b.median, 0.375);
  EXPECT_DOUBLE_EQ(a_vs_b.min, 0.25);
  EXPECT_DOUBLE_EQ(a_vs_b.max, 0.5);
  EXPECT_EQ(time[4].ratio.count, 1u);  // c vs a: seed 3 only
  EXPECT_DOUBLE_EQ(time[4].ratio.median, 3.0);
  EXPECT_EQ(time[3].ratio.count, 0u);  // b and c never both finished at a seed
  EXPECT_EQ(time[5].ratio.count, 0u);

  auto backward = hpt::host::pairwise_speedups(runs, {"a", "b", "c"}, TargetMeasure::BackwardPasses);
  ASSERT_EQ(backward.size(), 6u);
  EXPECT_EQ(backward[2].ratio.count, 2u);
  EXPECT_DOUBLE_EQ(backward[2].ratio.median, 2.5);
  EXPECT_DOUBLE_EQ(backward[2].ratio.min, 2.0);
  EXPECT_DOUBLE_EQ(backward[2].ratio.max, 3.0);
  EXPECT_DOUBLE_EQ(backward[4].ratio.median, 9.0);
}

TEST(BenchReport, SpeedupsRunByRunAreAMatrixInEveryOutput) {
  using hpt::host::TargetMeasure;
  hpt::host::BenchResults r;
  r.name = "pairs";
  r.baseline = "a";
  r.variants = {"a", "b", "c"};
  r.overrides = {{}, {}, {}};
  r.seeds = {0, 1, 2, 3};
  r.target.metric = "val_loss";
  r.runs = pairwise_runs();
  for (const auto& v : r.variants) r.stats.push_back(hpt::host::variant_stats(r.runs, v, r.baseline, "val_loss"));
  r.pairwise_seconds = hpt::host::pairwise_speedups(r.runs, r.variants, TargetMeasure::Seconds);
  r.pairwise_backward_passes = hpt::host::pairwise_speedups(r.runs, r.variants, TargetMeasure::BackwardPasses);

  std::string md = hpt::host::report_markdown(r);
  std::size_t section = md.find("## Speedups run by run\n");
  ASSERT_NE(section, std::string::npos) << md;
  std::string text = md.substr(section, md.find("\n## ", section + 1) - section);
  EXPECT_THAT(text, HasSubstr("a cell is the column variant's training time to target over the row variant's, seed by seed"));
  EXPECT_THAT(text, HasSubstr("above 1, the row variant is faster"));
  // Time to target, then backward passes: the same header, each its own numbers.
  const std::string header = "| variant | vs a | vs b | vs c |\n| --- | ---: | ---: | ---: |\n";
  std::size_t time_table = text.find(header), backward_table = text.find(header, time_table + 1);
  ASSERT_NE(time_table, std::string::npos) << text;
  ASSERT_NE(backward_table, std::string::npos) << text;
  std::string time = text.substr(time_table, backward_table - time_table), backward = text.substr(backward_table);
  EXPECT_THAT(time, HasSubstr("| b | 3.00x (2.00-4.00) | - | - |\n"));
  EXPECT_THAT(time, HasSubstr("| c | 3.00x | - | - |\n"));  // one seed: no range
  EXPECT_THAT(time, HasSubstr("| a | - | 0.38x (0.25-0.50) | 0.33x |\n"));
  EXPECT_THAT(backward, HasSubstr("| b | 2.50x (2.00-3.00) | - | - |\n"));
  EXPECT_THAT(backward, HasSubstr("| c | 9.00x | - | - |\n"));
  EXPECT_THAT(text, HasSubstr("backward passes to target"));

  std::string html = hpt::host::report_html(r);
  EXPECT_THAT(html, HasSubstr("<h2>Speedups run by run</h2>"));
  EXPECT_THAT(html, HasSubstr("<tr><th>variant</th><th>vs a</th><th>vs b</th><th>vs c</th></tr>"));
  EXPECT_THAT(html, HasSubstr("<tr><td>b</td><td>3.00x (2.00-4.00)</td><td>-</td><td>-</td></tr>"));
  EXPECT_THAT(html, HasSubstr("<tr><td>b</td><td>2.50x (2.00-3.00)</td><td>-</td><td>-</td></tr>"));

  auto json = hpt::host::results_json(r);
  const auto& pairs = json["pairwise_speedups"].as_array();
  ASSERT_EQ(pairs.size(), 6u);
  const auto& b_vs_a = pairs[2].as_object();
  EXPECT_EQ(b_vs_a.at("variant").as_string(), "b");
  EXPECT_EQ(b_vs_a.at("against").as_string(), "a");
  EXPECT_EQ(b_vs_a.at("count").to_number<std::int64_t>(), 2);
  EXPECT_DOUBLE_EQ(b_vs_a.at("median").as_double(), 3.0);
  EXPECT_DOUBLE_EQ(b_vs_a.at("min").as_double(), 2.0);
  EXPECT_DOUBLE_EQ(b_vs_a.at("max").as_double(), 4.0);
  const auto& b_vs_c = pairs[3].as_object();  // no seed with both: a count and nothing else
  EXPECT_EQ(b_vs_c.at("count").to_number<std::int64_t>(), 0);
  EXPECT_FALSE(b_vs_c.contains("median"));
  EXPECT_DOUBLE_EQ(json["pairwise_backward_passes"].as_array()[2].at("median").as_double(), 2.5);
}

// A variant with its own target_metric (an averaged baseline: avg.val_loss) is read on that
// metric: its final value in the tables, named in the Variants list.
TEST(BenchReport, AVariantsOwnTargetMetricIsTheOneItsFinalValueIsReadFrom) {
  auto with_final = [](boost::json::object s, double raw, double averaged) {
    s["final_metrics"] = boost::json::object{{"val_loss", raw}, {"avg.val_loss", averaged}};
    return s;
  };
  hpt::host::BenchResults r;
  r.name = "metrics";
  r.baseline = "plain";
  r.variants = {"plain", "ema"};
  r.overrides = {{}, {"averaging.evaluate=\"average\""}};
  r.seeds = {0};
  r.target.metric = "val_loss";
  r.runs = {record("plain", 0, with_final(summary(4.0, 4.0, 40, 100, 40), 0.125, 0.75)),
            record("ema", 0, with_final(summary(2.0, 2.0, 20, 100, 20), 0.625, 0.375))};
  r.stats.push_back(hpt::host::variant_stats(r.runs, "plain", r.baseline, "val_loss"));
  r.stats.push_back(hpt::host::variant_stats(r.runs, "ema", r.baseline, "avg.val_loss"));
  EXPECT_EQ(r.stats[1].metric, "avg.val_loss");
  EXPECT_DOUBLE_EQ(r.stats[1].final_metric.median, 0.375);
  EXPECT_DOUBLE_EQ(r.stats[0].final_metric.median, 0.125);
  const std::string md = hpt::host::report_markdown(r);
  EXPECT_THAT(md, HasSubstr("| final target metric |"));
  EXPECT_THAT(md, HasSubstr("- ema: `averaging.evaluate=\"average\"`; target on avg.val_loss\n"));
  EXPECT_THAT(md, HasSubstr("| 0.375 |"));   // ema's avg.val_loss, in both tables
  EXPECT_THAT(md, ::testing::Not(HasSubstr("| 0.625 |")));  // not its raw val_loss
}

TEST(BenchScore, MedianOfAnEvenCountIsTheMeanOfTheMiddleTwo) {
  EXPECT_DOUBLE_EQ(hpt::host::spread({3, 1, 2}).median, 2);
  EXPECT_DOUBLE_EQ(hpt::host::spread({4, 1, 3, 2}).median, 2.5);
  EXPECT_EQ(hpt::host::spread({}).count, 0u);
}

// ---------------------------------------------------------------------------------
// A tiny real suite: 2 variants x 2 seeds on the synthetic task, run once for the tests below.

class TinySuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    dir_->write("base.toml", kBase);
    out_dir_ = dir_->path() + "/out";
    bench_ = dir_->write("bench.toml", bench_text(out_dir_));
    first_ = run_command(std::string(HPT_EXE) + " bench " + quote(bench_));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static boost::json::object results() { return boost::json::parse(read_file(out_dir_ + "/results.json")).as_object(); }

  static TempDir* dir_;
  static std::string out_dir_, bench_;
  static CommandResult first_;
};
TempDir* TinySuite::dir_ = nullptr;
std::string TinySuite::out_dir_, TinySuite::bench_;
CommandResult TinySuite::first_;

TEST_F(TinySuite, RunsEveryVariantAtEverySeedInterleaved) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  EXPECT_THAT(first_.output, HasSubstr("4 runs (2 variants x 2 seeds), 0 already complete, 4 to run"));
  EXPECT_THAT(first_.output, HasSubstr("[1/4] full-s0: running"));
  EXPECT_THAT(first_.output, HasSubstr("ETA"));
  auto runs = results()["runs"].as_array();
  ASSERT_EQ(runs.size(), 4u);
  std::vector<std::string> order;
  for (const auto& r : runs) order.push_back(std::string(r.at("name").as_string()));
  EXPECT_EQ(order, (std::vector<std::string>{"full-s0", "hybrid-s0", "full-s1", "hybrid-s1"}));
  // The progress lines come in the same order.
  EXPECT_LT(first_.output.find("[2/4] hybrid-s0"), first_.output.find("[3/4] full-s1"));
  for (const auto& r : runs) {
    EXPECT_TRUE(r.at("finished").as_bool());
    EXPECT_FALSE(r.at("evals").as_array().empty());
    EXPECT_FALSE(r.at("train_loss").as_array().empty());
    EXPECT_FALSE(r.at("phases").as_array().empty());
    EXPECT_TRUE(fs::exists(std::string(r.at("run_dir").as_string()) + "/output.log"));
    EXPECT_EQ(r.at("summary").at("seed").as_int64(), r.at("seed").as_int64());
  }
}

TEST_F(TinySuite, TheConsoleShowsEachRunsProgressLine) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  // Not a terminal: plain lines; each run's last state is printed when it ends (and every
  // few seconds before, for longer runs).
  for (const std::string name : {"[1/4] full-s0", "[2/4] hybrid-s0", "[3/4] full-s1", "[4/4] hybrid-s1"}) {
    std::regex progress(std::regex_replace(name, std::regex(R"([\[\]/])"), R"(\$&)") +
                        R"(: step \d+/60  [\d.]+ steps/s  loss [\d.]+  val_loss [\d.e-]+ @\d+(  ETA [^\n]*)?\n)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(first_.output, m, progress)) << name << "\n" << first_.output;
    std::size_t running = first_.output.find(name + ": running");
    std::size_t result = first_.output.find(name + ": ", static_cast<std::size_t>(m.position(0)) + m.length(0));
    EXPECT_LT(running, static_cast<std::size_t>(m.position(0)));
    ASSERT_NE(result, std::string::npos);
    std::string result_line = first_.output.substr(result, first_.output.find('\n', result) - result);
    EXPECT_TRUE(std::regex_search(result_line, std::regex(": (target_reached|completed) at step \\d+"))) << result_line;
  }
  // No line repeats the one before it.
  std::istringstream lines(first_.output);
  std::string line, previous;
  while (std::getline(lines, line)) {
    EXPECT_NE(line, previous);
    previous = line;
  }
  EXPECT_EQ(first_.output.find('\r'), std::string::npos);  // nothing redrawn in place
}

TEST_F(TinySuite, ReportOnlySaysNotRunForRunsThatNeverRan) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  TempDir elsewhere;
  std::string out_dir = elsewhere.path() + "/report";
  // Seed 2 never ran: the report is written from what there is.
  auto r = run_command(std::string(HPT_EXE) + " bench " + quote(bench_) + " --report-only 'bench.seeds=[0,1,2]' " +
                       quote("bench.runs_dir=\"" + out_dir + "\""));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("6 of 6 runs not run yet"));
  // Nothing of this suite ran: every run says so, and the plots say so too.
  std::string md = read_file(out_dir + "/report.md");
  EXPECT_THAT(md, HasSubstr("| 5 | full-s2 | not run | — |"));
  EXPECT_THAT(md, HasSubstr("- hybrid-s2: not run"));
  EXPECT_THAT(md, HasSubstr("hybrid: no seed where both it and full ran to the end"));
  std::string html = read_file(out_dir + "/report.html");
  EXPECT_THAT(html, HasSubstr("<td>not run</td>"));
  std::regex not_a_number(R"((^|[^a-z])-?(nan|inf)([^a-z]|$)|[ML]-?(nan|inf))");
  EXPECT_FALSE(std::regex_search(html, not_a_number)) << "no garbage for runs without figures";

  // The suite's own runs directory, with a seed more: the two that ran report their
  // figures, the new seed says "not run".
  auto partly = run_command(std::string(HPT_EXE) + " bench " + quote(bench_) + " --report-only 'bench.seeds=[0,1,2]'");
  ASSERT_EQ(partly.code, 0) << partly.output;
  EXPECT_THAT(partly.output, HasSubstr("2 of 6 runs not run yet"));
  md = read_file(out_dir_ + "/report.md");
  EXPECT_THAT(md, HasSubstr("| 6 | hybrid-s2 | not run |"));
  EXPECT_TRUE(std::regex_search(md, std::regex(R"(\| 1 \| full-s0 \| (target_reached|completed) \|)"))) << md;
  EXPECT_THAT(md, HasSubstr("(median of 2 of 3 seeds)"));
  // Back to the suite's own report for the other tests (every run complete: nothing runs).
  auto back = run_command(std::string(HPT_EXE) + " bench " + quote(bench_));
  ASSERT_EQ(back.code, 0) << back.output;
}

TEST_F(TinySuite, TheReportPlotsEverySeed) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  std::string html = read_file(out_dir_ + "/report.html");
  auto svg_of = [&](const std::string& id) {
    std::size_t at = html.find("<svg id=\"plot-" + id + "\"");
    return at == std::string::npos ? std::string() : html.substr(at, html.find("</svg>", at) - at);
  };
  std::regex curve(R"(d="M[\d.]+ [\d.]+( L[\d.]+ [\d.]+){1,})");
  for (const std::string id : {"metric-time", "val-loss-step", "loss-step", "lr-step", "grad-norm-step"}) {
    std::string svg = svg_of(id);
    ASSERT_FALSE(svg.empty()) << "no plot " << id;
    for (const std::string run : {"full-s0", "hybrid-s0", "full-s1", "hybrid-s1"}) {
      std::size_t at = svg.find("<path class=\"data seed\" data-run=\"" + run + "\"");
      ASSERT_NE(at, std::string::npos) << id << " has no line for " << run;
      EXPECT_TRUE(std::regex_search(svg.substr(at, svg.find('>', at) - at), curve)) << id << " " << run;
    }
    // The seeds' thin lines lie under the band and the median.
    EXPECT_LT(svg.rfind("class=\"data seed\""), svg.find("class=\"data band\"")) << id;
  }
  EXPECT_THAT(svg_of("lr-step"), HasSubstr("learning rate"));
  EXPECT_THAT(svg_of("grad-norm-step"), HasSubstr("gradient norm"));
  EXPECT_THAT(svg_of("val-loss-step"), HasSubstr("target val_loss ≤ 0.5"));
  std::string phases = svg_of("phases");
  for (const std::string row : {"full · seed 0", "hybrid · seed 0", "full · seed 1", "hybrid · seed 1"})
    EXPECT_THAT(phases, HasSubstr(">" + row + "</text>"));
  std::regex headline(R"(<b>hybrid</b>: (\d+\.\d\dx (faster|slower) than|as fast as) full \(median of 2 seeds\) <span class="meta">\(training time to val_loss ≤ 0\.5)");
  EXPECT_TRUE(std::regex_search(html, headline)) << html.substr(html.find("<div class=\"headline\">"), 400);
  std::string md = read_file(out_dir_ + "/report.md");
  EXPECT_TRUE(std::regex_search(md, std::regex(R"(\*\*hybrid: (\d+\.\d\dx (faster|slower) than|as fast as) full \(median of 2 seeds\)\*\*)")))
      << md;
}

TEST_F(TinySuite, WritesTheThreeReports) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  auto res = results();
  EXPECT_EQ(res["variants"].as_array().size(), 2u);
  EXPECT_EQ(res["bench"].at("target").at("metric").as_string(), "val_loss");
  EXPECT_FALSE(res["machine"].at("arch").as_string().empty());
  std::string md = read_file(out_dir_ + "/report.md");
  EXPECT_THAT(md, HasSubstr("# Bench tiny: time to val_loss ≤ 0.5"));
  EXPECT_THAT(md, HasSubstr("| full |"));
  EXPECT_THAT(md, HasSubstr("| hybrid |"));
  EXPECT_THAT(md, HasSubstr("1 (baseline)"));
  EXPECT_THAT(md, HasSubstr("- machine: "));
  EXPECT_THAT(md, HasSubstr("- command: `hpt bench " + bench_ + "`"));
  // Both variants against each other, from the runs read back (2 seeds each).
  EXPECT_THAT(md, HasSubstr("## Speedups run by run"));
  EXPECT_THAT(md, HasSubstr("| variant | vs full | vs hybrid |"));
  for (const char* key : {"pairwise_speedups", "pairwise_backward_passes"}) {
    const auto& pairs = res[key].as_array();
    ASSERT_EQ(pairs.size(), 2u) << key;
    EXPECT_EQ(pairs[0].at("variant").as_string(), "full");
    EXPECT_EQ(pairs[0].at("against").as_string(), "hybrid");
    EXPECT_EQ(pairs[0].at("count").to_number<std::int64_t>(), 2) << key;
  }
  std::string html = read_file(out_dir_ + "/report.html");
  EXPECT_EQ(std::count(html.begin(), html.end(), '\0'), 0);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  std::regex external(R"((src|href)\s*=\s*"(https?:)?//)");
  EXPECT_FALSE(std::regex_search(html, external)) << "the report must not load anything";
}

TEST_F(TinySuite, ASecondRunSkipsEveryFinishedRun) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  std::string summary = out_dir_ + "/runs/hybrid-s1/summary.json";
  auto before = fs::last_write_time(summary);
  auto again = run_command(std::string(HPT_EXE) + " bench " + quote(bench_));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("4 already complete, 0 to run"));
  EXPECT_THAT(again.output, HasSubstr("[4/4] hybrid-s1: complete, skipped"));
  EXPECT_EQ(again.output.find("running"), std::string::npos);
  EXPECT_EQ(fs::last_write_time(summary), before);
}

TEST_F(TinySuite, AnEditedVariantRunsAgain) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  // Same base and runs directory, the hybrid variant's warm-up changed: its two runs are stale.
  std::string text = bench_text(out_dir_);
  text.replace(text.find("warmup_steps = 10"), 17, "warmup_steps = 12");
  std::string bench = dir_->write("edited.toml", text);
  auto r = run_command(std::string(HPT_EXE) + " bench " + quote(bench));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("2 already complete, 2 to run"));
  EXPECT_THAT(r.output, HasSubstr("[2/4] hybrid-s0: running"));
  // Back to the original suite for the other tests.
  auto back = run_command(std::string(HPT_EXE) + " bench " + quote(bench_));
  ASSERT_EQ(back.code, 0) << back.output;
}

TEST_F(TinySuite, ReportOnlyRunsNothing) {
  ASSERT_EQ(first_.code, 0) << first_.output;
  fs::remove(out_dir_ + "/report.md");
  auto r = run_command(std::string(HPT_EXE) + " bench " + quote(bench_) + " --report-only");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("running"), std::string::npos);
  EXPECT_TRUE(fs::exists(out_dir_ + "/report.md"));
}

// Decodes a PNG (8-bit RGB or RGBA, non-interlaced) with Python's zlib and prints
// "width height distinct_colors non_white_fraction".
const char* kPngStats = R"(
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n'
pos, idat, w, h, ctype = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
bpp = {2: 3, 6: 4}[ctype]
raw, stride, prev, rows = zlib.decompress(idat), w * bpp, bytearray(w * bpp), []
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line))
    prev = line
colors, non_white = set(), 0
for line in rows:
    for x in range(0, stride, bpp):
        px = line[x:x + 3]
        colors.add(px)
        non_white += px != b'\xff\xff\xff'
print(w, h, len(colors), non_white / float(w * h))
)";

TEST_F(TinySuite, ChromiumRendersThePlots) {
  if (run_command("command -v chromium").code != 0) GTEST_SKIP() << "chromium not installed: apt-get install chromium";
  ASSERT_EQ(first_.code, 0) << first_.output;
  TempDir tmp;
  std::string page = "file://" + out_dir_ + "/report.html";
  std::string flags = "--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking "
                      "--disable-component-update --disable-sync --user-data-dir=" + quote(tmp.path() + "/profile");
  std::string png = tmp.path() + "/report.png";
  auto shot = run_command("timeout 180 chromium " + flags + " --screenshot=" + quote(png) +
                          " --window-size=1280,2000 " + quote(page));
  ASSERT_TRUE(fs::exists(png)) << shot.output;
  // Kept in the build directory for people to look at.
  fs::create_directories(std::string(HPT_BINARY_DIR) + "/bench_test");
  fs::copy_file(png, std::string(HPT_BINARY_DIR) + "/bench_test/report.png", fs::copy_options::overwrite_existing);
  fs::copy_file(out_dir_ + "/report.html", std::string(HPT_BINARY_DIR) + "/bench_test/report.html",
                fs::copy_options::overwrite_existing);

  // The rendered DOM: seven plots, each with plotted data.
  auto dom = run_command("timeout 180 chromium " + flags + " --dump-dom " + quote(page));
  ASSERT_EQ(dom.code, 0) << dom.output;
  std::vector<std::string> svgs;
  for (std::size_t at = dom.output.find("<svg"); at != std::string::npos; at = dom.output.find("<svg", at + 1))
    svgs.push_back(dom.output.substr(at, dom.output.find("</svg>", at) - at));
  ASSERT_EQ(svgs.size(), 7u);
  std::regex curve(R"(class="data" d="M[\d.]+ [\d.]+( L[\d.]+ [\d.]+){2,})");
  std::regex bar(R"(<rect class="data" x="[\d.]+" y="[\d.]+" width="[\d.]*[1-9][\d.]*")");
  for (const auto& svg : svgs) {
    EXPECT_THAT(svg, HasSubstr("class=\"data"));
    EXPECT_TRUE(std::regex_search(svg, curve) || std::regex_search(svg, bar)) << svg.substr(0, 400);
  }
  EXPECT_TRUE(std::regex_search(svgs[1], curve)) << "(b) metric against time has no curve";
  EXPECT_TRUE(std::regex_search(svgs[3], curve)) << "(d) loss against step has no curve";

  // The screenshot: the requested size, and far from blank.
  std::string script = tmp.write("png_stats.py", kPngStats);
  auto stats = run_command("/usr/bin/python3 " + quote(script) + " " + quote(png));
  ASSERT_EQ(stats.code, 0) << stats.output;
  std::istringstream in(stats.output);
  int width = 0, height = 0, colors = 0;
  double non_white = 0;
  in >> width >> height >> colors >> non_white;
  EXPECT_EQ(width, 1280);
  EXPECT_EQ(height, 2000);
  EXPECT_GT(colors, 20) << "the screenshot looks blank";
  EXPECT_GT(non_white, 0.02) << "the screenshot looks blank";
}

}  // namespace
