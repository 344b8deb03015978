// The manifest's error messages: every kind of bad input names its position, what was
// expected and what was given, and the CLI exits with 2.
#include "config/manifest.hpp"

#include "test_support.hpp"

using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

const char* kGood = R"(
[run]
name = "m"
max_steps = 10

[task]
plugin = "synthetic"

[optimizer]
plugin = "sgd"
lr = 0.1
)";

TEST(Manifest, SyntaxErrorGivesFileLineColumn) {
  TempDir dir;
  std::string path = dir.write("bad.toml", "[run]\nname = \"x\"\nmax_steps = = 3\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":3:"));
  EXPECT_THAT(r.err, HasSubstr("TOML syntax error"));
}

TEST(Manifest, UnknownSectionSuggestsClosest) {
  TempDir dir;
  std::string path = dir.write("m.toml", std::string(kGood) + "\n[optimiser]\nplugin = \"adam\"\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":13:2"));
  EXPECT_THAT(r.err, HasSubstr("unknown section [optimiser]; did you mean [optimizer]?"));
}

TEST(Manifest, UnknownRunKeySuggestsClosest) {
  TempDir dir;
  std::string path = dir.write("m.toml", "[run]\nmax_step = 3\n[task]\nplugin=\"synthetic\"\n[optimizer]\nplugin=\"sgd\"\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":2:1"));
  EXPECT_THAT(r.err, HasSubstr("unknown key 'max_step' in [run]; did you mean 'max_steps'?"));
}

TEST(Manifest, WrongTypeNamesExpectedAndGiven) {
  TempDir dir;
  std::string path = dir.write("m.toml", "[run]\nmax_steps = \"ten\"\n[task]\nplugin=\"synthetic\"\n[optimizer]\nplugin=\"sgd\"\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":2:"));
  EXPECT_THAT(r.err, HasSubstr("'run.max_steps' must be an integer >= 1, got a string 'ten'"));
}

TEST(Manifest, OutOfRangeNamesRangeAndValue) {
  TempDir dir;
  std::string path = dir.write("m.toml", "[run]\nmax_steps = 0\n[task]\nplugin=\"synthetic\"\n[optimizer]\nplugin=\"sgd\"\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(path + ":2:"));
  EXPECT_THAT(r.err, HasSubstr("'run.max_steps' must be an integer >= 1, got 0"));
}

TEST(Manifest, OverrideErrorsNameTheOverride) {
  TempDir dir;
  std::string path = dir.write("m.toml", kGood);
  auto r = run_hpt({"validate", path, "run.max_steps=-4"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("override 'run.max_steps=-4'"));
  EXPECT_THAT(r.err, HasSubstr("got -4"));
}

TEST(Manifest, OverridesParseTomlValuesAndFallBackToStrings) {
  auto m = hpt::host::Manifest::parse(kGood, "inline.toml", {"run.seed=7", "run.name=abc", "task.sizes=[1, 2]"});
  EXPECT_EQ(m.table()["run"]["seed"].value<std::int64_t>(), 7);
  EXPECT_EQ(m.table()["run"]["name"].value<std::string>(), "abc");
  EXPECT_EQ(m.table()["task"]["sizes"].as_array()->size(), 2u);
}

TEST(Manifest, MissingRequiredSectionIsReported) {
  TempDir dir;
  std::string path = dir.write("m.toml", "[run]\nmax_steps = 3\n[optimizer]\nplugin=\"sgd\"\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing section [task]"));
}

TEST(Manifest, EveryProblemIsListedAtOnce) {
  TempDir dir;
  std::string path = dir.write("m.toml", "[run]\nmax_stepz = 3\nseed = -1\n[task]\nplugin=\"synthetic\"\n[optimizer]\nplugin=\"sgd\"\n");
  auto r = run_hpt({"validate", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(":2:1: unknown key 'max_stepz'"));
  EXPECT_THAT(r.err, HasSubstr(":3:8: 'run.seed' must be an integer >= 0, got -1"));
}

TEST(Manifest, MissingFileIsBadInput) {
  auto r = run_hpt({"validate", "/nonexistent/m.toml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot read manifest /nonexistent/m.toml: no such file"));
}

TEST(Manifest, ClosestNameOnlySuggestsNearWords) {
  EXPECT_EQ(hpt::host::closest_name("optimiser", {"optimizer", "task"}), "optimizer");
  EXPECT_EQ(hpt::host::closest_name("zzzzzz", {"optimizer", "task"}), "");
}

}  // namespace

// The resolved manifest is written by toml++: a string with control characters, quotes
// and backslashes reads back as itself, and so does every float.
TEST(Manifest, ResolvedManifestReadsBackExactly) {
  TempDir dir;
  std::string path = dir.write("m.toml", kGood);
  const std::string label = std::string("a\tb\x01") + "c\"d\\e";
  auto m = hpt::host::Manifest::load(path, {"optimizer.lr=0.0060000000000000001", "optimizer.momentum=0.9"});
  auto resolved = hpt::host::resolve(m, hpt::test::built_plugins());
  resolved.run.name = label;
  std::string text = resolved.to_toml();
  auto again = hpt::host::Manifest::parse(text, "resolved.toml");
  EXPECT_EQ(again.table()["run"]["name"].value<std::string>(), label) << text;
  EXPECT_EQ(again.table()["optimizer"]["lr"].value<double>(), 0.006) << text;
  EXPECT_EQ(again.table()["optimizer"]["momentum"].value<double>(), 0.9) << text;
  EXPECT_EQ(again.table()["optimizer"]["plugin"].value<std::string>(), "sgd") << text;
}

// Every float must be finite and fit the float32 tensors it feeds; the message names the key.
TEST(Manifest, FloatOptionsMustBeFiniteAndFitAFloat32) {
  TempDir dir;
  std::string path = dir.write("m.toml", kGood);
  for (const char* lr : {"optimizer.lr=inf", "optimizer.lr=nan", "optimizer.lr=1e308"}) {
    auto r = run_hpt({"validate", path, lr});
    EXPECT_EQ(r.code, 2) << lr;
    EXPECT_THAT(r.err, HasSubstr("'optimizer.lr' must be a finite float within +-3.4e38")) << lr << ": " << r.err;
  }
}

TEST(Manifest, ADirectoryIsNotAManifest) {
  TempDir dir;
  auto r = run_hpt({"validate", dir.path()});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(dir.path() + ": it is a directory"));
}

TEST(Manifest, RunNameMustNameADirectory) {
  TempDir dir;
  std::string path = dir.write("m.toml", kGood);
  auto nul = run_hpt({"validate", path, "run.name=\"a\\u0000b\""});
  EXPECT_EQ(nul.code, 2) << nul.err;
  EXPECT_THAT(nul.err, HasSubstr("'run.name' must be a directory name (it contains a NUL byte)"));
  auto longer = run_hpt({"validate", path, "run.name=\"" + std::string(300, 'x') + "\""});
  EXPECT_EQ(longer.code, 2);
  EXPECT_THAT(longer.err, HasSubstr("it is 300 bytes long; at most 255"));
  auto slash = run_hpt({"validate", path, "run.name=\"a/b\""});
  EXPECT_THAT(slash.err, HasSubstr("it contains '/'"));
}
