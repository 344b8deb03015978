// The docs say what is true: docs/manifest.md lists every option of every built plugin,
// and every [run] key; every manifest shipped in configs/ is valid.
#include <filesystem>

#include "config/manifest.hpp"
#include "config/averaging_settings.hpp"
#include "config/curriculum_settings.hpp"
#include "config/distributed_settings.hpp"
#include "config/precision_settings.hpp"
#include "plugins/plugin_loader.hpp"
#include "test_support.hpp"

namespace {

TEST(Docs, ManifestReferenceListsEveryOption) {
  const std::string doc = hpt::test::read_file(std::string(HPT_SOURCE_DIR) + "/docs/manifest.md");
  ASSERT_FALSE(doc.empty());
  for (const auto& spec : hpt::host::run_option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |"), std::string::npos) << "[run] key " << spec.name;

  for (const auto& spec : hpt::host::DistributedSettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |"), std::string::npos) << "[distributed] key " << spec.name;
  for (const auto& spec : hpt::host::PrecisionSettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |"), std::string::npos) << "[backend] key " << spec.name;
  for (const auto& spec : hpt::host::AveragingSettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |"), std::string::npos) << "[averaging] key " << spec.name;
  for (const auto& spec : hpt::host::LookaheadSettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |"), std::string::npos) << "[lookahead] key " << spec.name;
  for (const auto& spec : hpt::host::CurriculumSettings::option_specs())
    EXPECT_NE(doc.find("| `" + spec.name + "` |"), std::string::npos) << "[curriculum] key " << spec.name;

  hpt::host::PluginLoader loader({std::string(HPT_BINARY_DIR) + "/plugins"});
  std::vector<std::string> problems;
  auto plugins = loader.load_all(&problems);
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_GE(plugins.size(), 7u);
  for (const auto& p : plugins) {
    // Each plugin has its own heading: "### <section> `<name>`", followed by its options.
    std::string heading = std::string("### ") + hpt::section_name(p->kind) + " `" + p->name + "`";
    std::size_t at = doc.find(heading);
    ASSERT_NE(at, std::string::npos) << "no heading '" << heading << "' in docs/manifest.md";
    std::size_t end = doc.find("\n### ", at + heading.size());
    std::string section = doc.substr(at, end == std::string::npos ? std::string::npos : end - at);
    for (const auto& o : p->options)
      EXPECT_NE(section.find("`" + o.name + "`"), std::string::npos)
          << "option '" << o.name << "' of " << heading << " is not documented";
  }
}

TEST(Docs, ShippedManifestsAreValid) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(HPT_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    auto r = hpt::test::run_hpt({"validate", entry.path().string()});
    EXPECT_EQ(r.code, 0) << entry.path() << ": " << r.err;
    ++checked;
  }
  EXPECT_GE(checked, 4);  // quickstart, fm16 baseline and the two hybrids at least
}

}  // namespace
