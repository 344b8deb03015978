// Presets ([run] preset = "<name>", configs/presets/<name>.toml): the shipped FM-16
// hybrids written with a preset resolve exactly as their explicit settings did; the
// manifest's own keys and the command line win over the preset's; a section naming
// another plugin takes nothing from it; unknown names, malformed presets and nested
// presets are clear errors; the resolved manifest stands alone.
#include <sstream>

#include "config/manifest.hpp"
#include "config/preset.hpp"
#include "test_support.hpp"

using ::testing::HasSubstr;
using ::testing::AllOf;
using ::testing::Not;

namespace {

// configs/fm16_hybrid_linear.toml as it was before presets, every key spelt out.
const char* kExplicitHybridLinear = R"(
[run]
name = "fm16-hybrid-linear"
seed = 0
max_steps = 20000
eval_every = 200
log_every = 10
probe_interval = 20
target = { metric = "val_accuracy", value = 0.895 }

[task]
plugin = "fashion_mnist"
model = "cnn"
channels = [16, 32, 32]
batch_size = 128
probe_size = 128

[optimizer]
plugin = "adamw"
lr = 6e-3

[backend]
plugin = "cpu"

[dynamics]
plugin = "linear"
ema_decay = 0.98
stat_decay = 0.98
history = 50
min_observations = 50
average_decay = 0.9
step_gain = 2.0
max_scale = 4.0

[correction]
plugin = "residual"
rollback_tolerance = 0.05
shrink = 1.0
factor_rate = 0.0

[phase]
plugin = "adaptive"
warmup_steps = 100
min_real_steps = 5
confidence_threshold = 0.05
initial_horizon = 20
min_horizon = 10
max_horizon = 60
)";

// configs/fm16_hybrid_rssm.toml as it was before presets.
const char* kExplicitHybridRssm = R"(
[run]
name = "fm16-hybrid-rssm"
seed = 0
max_steps = 20000
eval_every = 200
log_every = 10
probe_interval = 20
target = { metric = "val_accuracy", value = 0.895 }

[task]
plugin = "fashion_mnist"
model = "cnn"
channels = [16, 32, 32]
batch_size = 128
probe_size = 128

[optimizer]
plugin = "adamw"
lr = 6e-3

[backend]
plugin = "cpu"

[dynamics]
plugin = "rssm"

[correction]
plugin = "residual"
rollback_tolerance = 0.05
shrink = 1.0

[phase]
plugin = "adaptive"
warmup_steps = 100
min_real_steps = 5
confidence_threshold = 0.05
initial_horizon = 20
min_horizon = 10
max_horizon = 60
)";

const char* kSyntheticRun = R"(
[run]
name = "preset-test"
max_steps = 10

[task]
plugin = "synthetic"

[optimizer]
plugin = "adamw"
)";

hpt::host::ResolvedManifest resolved(const hpt::host::Manifest& m) { return hpt::host::resolve(m, hpt::test::built_plugins()); }

hpt::host::ResolvedManifest resolved_text(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return resolved(hpt::host::Manifest::parse(text, "preset_test.toml", overrides));
}

// The resolved manifest without its comment lines (which name the source file).
std::string settings_of(const hpt::host::ResolvedManifest& r) {
  std::istringstream in(r.to_toml());
  std::string out;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("#", 0) != 0) out += line + "\n";
  return out;
}

std::string config(const std::string& name) { return std::string(HPT_SOURCE_DIR) + "/configs/" + name; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "no hpt::BadInput";
  return "";
}

TEST(Preset, ShippedHybridsResolveAsTheirExplicitSettings) {
  EXPECT_EQ(settings_of(resolved(hpt::host::Manifest::load(config("fm16_hybrid_linear.toml")))),
            settings_of(resolved_text(kExplicitHybridLinear)));
  EXPECT_EQ(settings_of(resolved(hpt::host::Manifest::load(config("fm16_hybrid_rssm.toml")))),
            settings_of(resolved_text(kExplicitHybridRssm)));
}

TEST(Preset, ValidatePrintsTheExpandedSettingsAndTheResultStandsAlone) {
  auto r = hpt::test::run_hpt({"validate", config("fm16_hybrid_linear.toml")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("# run.preset \"hybrid_linear\" expanded"));
  EXPECT_THAT(r.out, HasSubstr("ema_decay = 0.9799"));  // 0.98, written to max_digits10
  EXPECT_THAT(r.out, HasSubstr("min_real_steps = 5"));
  EXPECT_THAT(r.out, HasSubstr("preset = \"\""));  // read back, it expands nothing again
  auto resolved_once = resolved(hpt::host::Manifest::load(config("fm16_hybrid_linear.toml")));
  auto read_back = resolved_text(resolved_once.to_toml());
  EXPECT_EQ(settings_of(read_back), settings_of(resolved_once));
}

TEST(Preset, TheManifestAndTheCommandLineWinKeyByKey) {
  const std::string manifest = R"(
[run]
name = "preset-test"
preset = "hybrid_linear"
max_steps = 10

[task]
plugin = "synthetic"

[optimizer]
plugin = "adamw"

[dynamics]
ema_decay = 0.5
)";
  auto r = resolved_text(manifest, {"dynamics.history=7", "phase.min_real_steps=3"});
  const auto& dynamics = r.at(hpt::PluginKind::DynamicsModel);
  EXPECT_EQ(dynamics.info->name, "linear");                     // from the preset
  EXPECT_DOUBLE_EQ(dynamics.options.get_float("ema_decay"), 0.5);  // the manifest's
  EXPECT_EQ(dynamics.options.get_int("history"), 7);             // the command line's
  EXPECT_EQ(dynamics.options.get_int("min_observations"), 50);   // the preset's
  EXPECT_EQ(r.at(hpt::PluginKind::PhaseController).options.get_int("min_real_steps"), 3);
  EXPECT_EQ(r.at(hpt::PluginKind::PhaseController).options.get_int("max_horizon"), 60);
  EXPECT_EQ(r.at(hpt::PluginKind::CorrectionStrategy).info->name, "residual");
  EXPECT_EQ(r.run.probe_interval, 20);
  // The preset's [task] is for fashion_mnist: the synthetic task takes nothing from it
  // (probe_size would be an unknown key there).
  EXPECT_EQ(r.at(hpt::PluginKind::Task).info->name, "synthetic");
}

TEST(Preset, ACommandLinePresetAndASectionWithAnotherPlugin) {
  // phase.plugin=bandit: the preset's adaptive options would be unknown keys for the bandit.
  auto r = resolved_text(kSyntheticRun, {"run.preset=hybrid_linear", "phase.plugin=\"bandit\""});
  EXPECT_EQ(r.at(hpt::PluginKind::PhaseController).info->name, "bandit");
  EXPECT_EQ(r.at(hpt::PluginKind::DynamicsModel).info->name, "linear");
  EXPECT_EQ(r.at(hpt::PluginKind::DynamicsModel).options.get_int("history"), 50);
}

TEST(Preset, AnUnknownPresetNamesTheKnownOnes) {
  const std::string e = error_of([] { resolved_text(kSyntheticRun, {"run.preset=hybrid_lin"}); });
  EXPECT_THAT(e, HasSubstr("override 'run.preset=hybrid_lin'"));
  EXPECT_THAT(e, HasSubstr("unknown preset 'hybrid_lin'"));
  EXPECT_THAT(e, HasSubstr("did you mean 'hybrid_linear'?"));
  EXPECT_THAT(e, HasSubstr("known presets: hybrid_linear, hybrid_nowcast, hybrid_rssm"));
  const std::string t = error_of([] { resolved_text(kSyntheticRun, {"run.preset=3"}); });
  EXPECT_THAT(t, HasSubstr("'run.preset' must be a string naming a preset (hybrid_linear, hybrid_nowcast, hybrid_rssm"));
}

TEST(Preset, MalformedAndNestedPresetsAreErrorsInThePresetsFile) {
  hpt::test::TempDir dir;
  dir.write("loose.toml", "ema_decay = 0.5\n");
  dir.write("nested.toml", "[run]\npreset = \"loose\"\n");
  dir.write("broken.toml", "[dynamics\n");
  const std::vector<std::string> dirs = {dir.path()};
  EXPECT_EQ(hpt::host::preset_names(dirs), (std::vector<std::string>{"broken", "loose", "nested"}));
  for (const std::string name : {"loose", "nested", "broken"}) {
    toml::table manifest;
    const std::string e = error_of([&] { hpt::host::expand_preset(manifest, name, "here", dirs); });
    EXPECT_THAT(e, HasSubstr(dir.path() + "/" + name + ".toml:")) << name;
  }
  toml::table manifest;
  EXPECT_THAT(error_of([&] { hpt::host::expand_preset(manifest, "loose", "here", dirs); }), HasSubstr("outside a section"));
  EXPECT_THAT(error_of([&] { hpt::host::expand_preset(manifest, "nested", "here", dirs); }), HasSubstr("do not nest"));
  EXPECT_THAT(error_of([&] { hpt::host::expand_preset(manifest, "../x", "here", dirs); }), HasSubstr("unknown preset"));
}

TEST(Preset, ABadKeyFromAPresetIsReportedInThePresetsFile) {
  hpt::test::TempDir dir;
  const std::string file = dir.write("typo.toml", "[dynamics]\nplugin = \"linear\"\nema_decy = 0.5\n");
  auto m = hpt::host::Manifest::parse(kSyntheticRun, "preset_test.toml");
  toml::table table = toml::parse(std::string_view(kSyntheticRun), std::string("preset_test.toml"));  // a copy would forget its sources
  hpt::host::expand_preset(table, "typo", "here", {dir.path()});
  ASSERT_NE(table["dynamics"]["ema_decy"].node(), nullptr);
  ASSERT_NE(table["dynamics"]["ema_decy"].node()->source().path, nullptr);
  EXPECT_EQ(*table["dynamics"]["ema_decy"].node()->source().path, file);
  EXPECT_THAT(m.where(table["dynamics"]["ema_decy"].node()->source(), "dynamics.ema_decy"), HasSubstr(file + ":3:"));
  EXPECT_THAT(m.where(table["run"]["max_steps"].node()->source(), "run.max_steps"),
              AllOf(HasSubstr("preset_test.toml:"), Not(HasSubstr(file))));
}

}  // namespace
