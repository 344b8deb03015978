// The example plugin of docs/writing-plugins.md, built out of tree against the installed
// SDK (cmake --install + find_package(hpt_sdk)) and run through hpt.
#include <cstdlib>
#include <regex>

#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

// Runs a shell command, its output into `log`; returns the exit status.
int sh(const std::string& command, const std::string& log) {
  int status = std::system((command + " >" + log + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Writes every block marked <!-- file: NAME --> in the markdown file into `dir`.
std::vector<std::string> extract_files(const std::string& markdown, const std::string& dir) {
  std::regex block(R"(<!-- file: ([^ ]+) -->\s*```[a-z]*\n([\s\S]*?)```)");
  std::vector<std::string> names;
  for (std::sregex_iterator it(markdown.begin(), markdown.end(), block), end; it != end; ++it) {
    std::string name = (*it)[1];
    std::ofstream(dir + "/" + name) << (*it)[2];
    names.push_back(name);
  }
  return names;
}

TEST(OutOfTreePlugin, DocumentedExampleBuildsAgainstTheInstalledSdkAndRuns) {
  TempDir dir;
  const std::string prefix = dir.path() + "/prefix", src = dir.path() + "/src", build = dir.path() + "/build";
  std::filesystem::create_directories(src);

  ASSERT_EQ(sh("cmake --install " + std::string(HPT_BINARY_DIR) + " --prefix " + prefix, dir.path() + "/install.log"), 0)
      << read_file(dir.path() + "/install.log");
  EXPECT_TRUE(std::filesystem::exists(prefix + "/include/hpt/plugin.hpp"));

  auto files = extract_files(read_file(std::string(HPT_SOURCE_DIR) + "/docs/writing-plugins.md"), src);
  ASSERT_EQ(files, (std::vector<std::string>{"periodic_phase.cpp", "CMakeLists.txt"}));

  ASSERT_EQ(sh("cmake -S " + src + " -B " + build + " -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + prefix,
               dir.path() + "/configure.log"),
            0)
      << read_file(dir.path() + "/configure.log");
  ASSERT_EQ(sh("cmake --build " + build, dir.path() + "/build.log"), 0) << read_file(dir.path() + "/build.log");
  ASSERT_TRUE(std::filesystem::exists(build + "/hpt_phase_periodic.so"));

  auto listed = run_hpt({"plugins", "--kind", "phase", "--dir", build});
  EXPECT_EQ(listed.code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("periodic"));
  EXPECT_THAT(listed.out, HasSubstr("period = 20"));

  // A run that uses it: predicted phases must happen.
  std::string manifest = dir.write("m.toml", "[run]\nname = \"periodic\"\nmax_steps = 40\neval_every = 0\nruns_dir = \"" +
                                                 dir.path() + "/runs\"\nplugin_dirs = [\"" + build + "\", \"" +
                                                 HPT_TEST_PLUGIN_DIR + "/engine\"]\n"
                                                 "[task]\nplugin = \"counting\"\n[optimizer]\nplugin = \"sgd\"\n"
                                                 "[dynamics]\nplugin = \"fixed\"\nstep = 1e-6\n"
                                                 "[correction]\nplugin = \"none\"\ntolerance = 100.0\n"
                                                 "[phase]\nplugin = \"periodic\"\nperiod = 5\nhorizon = 3\n");
  auto r = run_hpt({"run", manifest, "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string summary = read_file(dir.path() + "/runs/periodic/summary.json");
  EXPECT_THAT(summary, HasSubstr("\"plugins\""));
  EXPECT_THAT(summary, HasSubstr("periodic 1.0.0"));
  EXPECT_EQ(summary.find("\"predicted_steps\":0,"), std::string::npos) << summary;
}

}  // namespace
