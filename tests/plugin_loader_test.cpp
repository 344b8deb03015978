// The plugin loader refuses every broken or mismatched library with a message that
// names both sides, and the CLI turns that into exit code 2.
#include "plugins/plugin_loader.hpp"

#include <filesystem>

#include "test_support.hpp"

using hpt::PluginKind;
using hpt::host::PluginLoader;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

std::string variant_dir(const std::string& variant) { return std::string(HPT_TEST_PLUGIN_DIR) + "/" + variant; }
std::string plugins_dir() { return std::string(HPT_BINARY_DIR) + "/plugins"; }

// The message of the BadInput that finding backend "testing" in `dirs` throws.
std::string find_error(const std::vector<std::string>& dirs, const std::string& name = "testing",
                       PluginKind kind = PluginKind::Backend) {
  PluginLoader loader(dirs);
  try {
    loader.find(kind, name);
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << name;
  return "";
}

TEST(PluginLoader, LoadsAGoodPluginAndCreatesIt) {
  PluginLoader loader({variant_dir("good")});
  auto info = loader.find(PluginKind::Backend, "testing");
  EXPECT_EQ(info->name, "testing");
  EXPECT_EQ(info->version, "0.0.1");
  ASSERT_EQ(info->options.size(), 1u);
  EXPECT_EQ(info->options[0].name, "mood");
  hpt::PluginContext context;
  auto backend = loader.create<hpt::Backend>(*info, context, hpt::Options::defaults(info->options));
  EXPECT_EQ(backend->device(), torch::Device(torch::kCPU));
}

TEST(PluginLoader, ObjectKeepsItsLibraryLoaded) {
  std::shared_ptr<hpt::Backend> backend;
  {
    PluginLoader loader({variant_dir("good")});
    auto info = loader.find(PluginKind::Backend, "testing");
    hpt::PluginContext context;
    backend = loader.create<hpt::Backend>(*info, context, hpt::Options::defaults(info->options));
  }
  // The loader and its PluginInfo are gone; the object's code must still be there.
  auto t = torch::ones({3});
  backend->add_scaled({t}, {torch::ones({3})}, {2.0});
  EXPECT_TRUE(torch::equal(t, torch::full({3}, 3.0f)));
}

TEST(PluginLoader, MissingPluginListsDirectoriesAndAvailable) {
  std::string e = find_error({variant_dir("good"), plugins_dir()}, "nosuch");
  EXPECT_THAT(e, HasSubstr("no Backend plugin named 'nosuch'"));
  EXPECT_THAT(e, HasSubstr(variant_dir("good")));
  EXPECT_THAT(e, HasSubstr(plugins_dir()));
  EXPECT_THAT(e, HasSubstr("available backend plugins: cpu, testing"));
}

TEST(PluginLoader, SdkAbiMajorMismatchNamesBothVersions) {
  std::string e = find_error({variant_dir("abi_major")});
  EXPECT_THAT(e, HasSubstr("built for hpt SDK ABI 99."));
  EXPECT_THAT(e, HasSubstr("this hpt has SDK ABI " + std::to_string(HPT_SDK_ABI_MAJOR) + "."));
}

TEST(PluginLoader, NewerSdkMinorIsRefused) {
  std::string e = find_error({variant_dir("abi_minor")});
  EXPECT_THAT(e, HasSubstr("needs hpt SDK ABI " + std::to_string(HPT_SDK_ABI_MAJOR) + "." +
                           "99"));
  EXPECT_THAT(e, HasSubstr("newer than this hpt's"));
}

TEST(PluginLoader, TorchVersionMismatchNamesBothVersions) {
  std::string e = find_error({variant_dir("torch_version")});
  EXPECT_THAT(e, HasSubstr("built with LibTorch 0.4.1"));
  EXPECT_THAT(e, HasSubstr(std::string("this hpt runs LibTorch ") + HPT_TORCH_VERSION_STRING));
}

TEST(PluginLoader, CxxAbiMismatchNamesBothFlags) {
  std::string e = find_error({variant_dir("cxx_abi")});
  EXPECT_THAT(e, HasSubstr("_GLIBCXX_USE_CXX11_ABI=" + std::to_string(1 - HPT_CXX11_ABI)));
  EXPECT_THAT(e, HasSubstr("this hpt with _GLIBCXX_USE_CXX11_ABI=" + std::to_string(HPT_CXX11_ABI)));
}

TEST(PluginLoader, TorchFlavourMismatchIsRefused) {
  // Same LibTorch version, other build flavour (CUDA against CPU-only): not interchangeable.
  std::string e = find_error({variant_dir("torch_flavour")});
  const std::string host = HPT_TORCH_CUDA ? "CUDA" : "CPU-only";
  const std::string other = HPT_TORCH_CUDA ? "CPU-only" : "CUDA";
  EXPECT_THAT(e, HasSubstr("was built against a " + other + " LibTorch " + HPT_TORCH_VERSION_STRING));
  EXPECT_THAT(e, HasSubstr("this hpt against a " + host + " LibTorch " + HPT_TORCH_VERSION_STRING));
  EXPECT_THAT(e, HasSubstr(variant_dir("torch_flavour") + "/hpt_backend_testing.so"));
}

TEST(PluginLoader, LibraryWithoutEntryPoint) {
  std::string e = find_error({variant_dir("no_entry")});
  EXPECT_THAT(e, HasSubstr("has no entry point 'hpt_plugin_entry'"));
  EXPECT_THAT(e, HasSubstr(variant_dir("no_entry") + "/hpt_backend_testing.so"));
}

TEST(PluginLoader, TwoLibrariesOfferingTheSamePlugin) {
  std::string e = find_error({variant_dir("good"), variant_dir("duplicate")});
  EXPECT_THAT(e, HasSubstr("two libraries offer backend plugin 'testing'"));
  EXPECT_THAT(e, HasSubstr(variant_dir("good") + "/hpt_backend_testing.so"));
  EXPECT_THAT(e, HasSubstr(variant_dir("duplicate") + "/hpt_backend_testing.so"));
}

TEST(PluginLoader, FileNameAndDescriptorMustAgree) {
  std::string e = find_error({variant_dir("misnamed")});
  EXPECT_THAT(e, HasSubstr("says it is backend plugin 'other'"));
}

TEST(PluginLoader, WrongKindForTheSection) {
  std::string e = find_error({plugins_dir()}, "cpu", PluginKind::Optimizer);
  EXPECT_THAT(e, HasSubstr("plugin 'cpu' is a Backend"));
  EXPECT_THAT(e, HasSubstr("[optimizer] needs a Optimizer"));
}

TEST(PluginLoader, FactoryExceptionBecomesTheMessage) {
  PluginLoader loader({variant_dir("throws")});
  auto info = loader.find(PluginKind::Backend, "testing");
  hpt::PluginContext context;
  try {
    loader.create<hpt::Backend>(*info, context, hpt::Options::defaults(info->options));
    FAIL() << "expected BadInput";
  } catch (const hpt::BadInput& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("failed to start: testing backend refuses to start: the GPU is on fire"));
  }
}

// The same errors through `hpt run`, with exit code 2.
class LoaderCli : public ::testing::Test {
 protected:
  hpt::test::CliResult run_with(const std::string& variant, const std::string& extra = "") {
    std::string manifest = "[run]\nname = \"loader\"\nmax_steps = 2\nruns_dir = \"" + dir_.path() +
                           "/runs\"\nplugin_dirs = [\"" + variant_dir(variant) + "\"]\n" +
                           "[task]\nplugin = \"synthetic\"\n[optimizer]\nplugin = \"sgd\"\n[backend]\nplugin = \"testing\"\n" +
                           extra;
    return run_hpt({"run", dir_.write("m.toml", manifest)});
  }
  TempDir dir_;
};

TEST_F(LoaderCli, EveryBrokenLibraryExitsWithTwo) {
  for (const char* variant : {"abi_major", "abi_minor", "torch_version", "torch_flavour", "cxx_abi", "no_entry", "misnamed", "throws"}) {
    auto r = run_with(variant);
    EXPECT_EQ(r.code, 2) << variant << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(variant_dir(variant))) << variant;
  }
}

TEST_F(LoaderCli, UnknownPluginOptionSuggestsTheDeclaredOne) {
  auto r = run_with("good", "moood = \"busy\"\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown key 'moood' in [backend]; did you mean 'mood'? (plugin 'testing' accepts: mood, "
                               "plugin; every [backend] also accepts: growth_interval, loss_scale, memory_budget, "
                               "precision, scale_backoff, scale_growth)"));
}

TEST_F(LoaderCli, PluginOptionOutsideItsChoices) {
  auto r = run_with("good", "mood = \"angry\"\n");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("'backend.mood' must be one of calm, busy, got \"angry\""));
}

TEST(PluginsCommand, ListsEveryKindWithOptions) {
  auto r = run_hpt({"plugins"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* kind : {"task", "optimizer", "backend", "dynamics", "correction", "phase", "checkpointer"})
    EXPECT_THAT(r.out, HasSubstr(std::string("\n") + kind + " (")) << kind;
  EXPECT_THAT(r.out, HasSubstr("threads = 0"));
  EXPECT_EQ(r.out.find("(none)"), std::string::npos) << "a kind without any plugin:\n" << r.out;
}

// What loading the testing backend from `dir` says.
std::string load_error(const std::string& dir) {
  try {
    PluginLoader({dir}).find(hpt::PluginKind::Backend, "testing");
  } catch (const hpt::BadInput& e) {
    return e.what();
  }
  return "(loaded)";
}

TEST(PluginLoader, AnEmptyOrForeignFileIsNotASharedLibrary) {
  TempDir dir;
  dir.write("hpt_backend_testing.so", "");
  EXPECT_THAT(load_error(dir.path()), HasSubstr("hpt_backend_testing.so: it is empty, not a shared library"));
  dir.write("hpt_backend_testing.so", "#!/bin/sh\necho not a library\n");
  EXPECT_THAT(load_error(dir.path()), HasSubstr("it is not a shared library (no ELF header)"));
}

TEST(PluginLoader, AWorldWritableLibraryIsWarnedAbout) {
  TempDir dir;
  const std::string copy = dir.path() + "/hpt_backend_testing.so";
  std::filesystem::copy_file(variant_dir("good") + "/hpt_backend_testing.so", copy);
  std::filesystem::permissions(copy, std::filesystem::perms::others_write, std::filesystem::perm_options::add);
  PluginLoader loader({dir.path()});
  std::vector<std::string> warnings;
  loader.on_warning([&](const std::string& w) { warnings.push_back(w); });
  loader.find(hpt::PluginKind::Backend, "testing");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr(copy + " is writable by every user"));
}

// `hpt plugins` shows where each plugin comes from, and flags a library whose file name
// and descriptor disagree instead of listing it under its descriptor's name.
TEST(PluginsCommand, ShowsPathsAndFlagsAMisnamedLibrary) {
  auto r = run_hpt({"plugins", "--kind", "backend", "--dir", variant_dir("misnamed")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("from " + std::string(HPT_BINARY_DIR) + "/plugins/hpt_backend_cpu.so"));
  EXPECT_EQ(r.out.find("other"), std::string::npos) << r.out;
  EXPECT_THAT(r.err, HasSubstr(variant_dir("misnamed") + "/hpt_backend_testing.so says it is backend plugin 'other'"));
}

TEST(PluginsCommand, UnknownKindIsBadInput) {
  auto r = run_hpt({"plugins", "--kind", "optimiser"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("did you mean 'optimizer'?"));
}

}  // namespace
