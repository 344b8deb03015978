// `hpt bench`: bench manifest errors (position, expected, given; exit 2), a tiny real
// suite on the synthetic task (interleaved order, the three outputs, resuming skips
// finished runs), the speedup and budget-rule arithmetic, and the HTML report rendered
// by headless Chromium.
#include <cstdio>
#include <filesystem>
#include <regex>

#include <boost/json.hpp>

#include "bench/bench_results.hpp"
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

  // The rendered DOM: four plots, each with plotted data.
  auto dom = run_command("timeout 180 chromium " + flags + " --dump-dom " + quote(page));
  ASSERT_EQ(dom.code, 0) << dom.output;
  std::vector<std::string> svgs;
  for (std::size_t at = dom.output.find("<svg"); at != std::string::npos; at = dom.output.find("<svg", at + 1))
    svgs.push_back(dom.output.substr(at, dom.output.find("</svg>", at) - at));
  ASSERT_EQ(svgs.size(), 4u);
  std::regex curve(R"(class="data" d="M[\d.]+ [\d.]+( L[\d.]+ [\d.]+){2,})");
  std::regex bar(R"(<rect class="data" x="[\d.]+" y="[\d.]+" width="[\d.]*[1-9][\d.]*")");
  for (const auto& svg : svgs) {
    EXPECT_THAT(svg, HasSubstr("class=\"data"));
    EXPECT_TRUE(std::regex_search(svg, curve) || std::regex_search(svg, bar)) << svg.substr(0, 400);
  }
  EXPECT_TRUE(std::regex_search(svgs[1], curve)) << "(b) metric against time has no curve";
  EXPECT_TRUE(std::regex_search(svgs[2], curve)) << "(c) loss against step has no curve";

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
