// The install and the examples of docs/writing-plugins.md: `cmake --install` copies into
// its prefix without touching the build tree, and the installed hpt finds the installed
// plugins by itself; every example plugin of the page, built out of tree against the
// installed SDK (find_package(hpt_sdk)), trains in one run through hpt and resumes from
// its own checkpoints.
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <regex>

#include "test_support.hpp"

using hpt::test::read_file;
using hpt::test::run_hpt;
using hpt::test::TempDir;
using ::testing::HasSubstr;

namespace {

namespace fs = std::filesystem;

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

// Every file under `root` with its size and modification time (nanoseconds).
std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> file_stamps(const std::string& root) {
  std::map<std::string, std::pair<std::uintmax_t, std::int64_t>> stamps;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
    stamps[it->path().string()] = {static_cast<std::uintmax_t>(st.st_size),
                                   st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
  }
  return stamps;
}

// cmake --install of the build tree into `prefix`; the log on failure.
void install_into(const std::string& prefix, const std::string& log) {
  ASSERT_EQ(sh("cmake --install " + std::string(HPT_BINARY_DIR) + " --prefix " + prefix, log), 0) << read_file(log);
}

TEST(Install, CopiesIntoThePrefixOnlyAndTheInstalledHptFindsTheInstalledPlugins) {
  TempDir dir;
  const std::string prefix = dir.path() + "/prefix";
  const auto before = file_stamps(HPT_BINARY_DIR);
  install_into(prefix, dir.path() + "/install.log");
  const auto after = file_stamps(HPT_BINARY_DIR);
  // Nothing in the build tree is new or changed, but CMake's own list of what it
  // installed (written by every `cmake --install`, whatever the project says). Left out:
  // what other tests may write meanwhile under ctest -j (ctest's Testing/ log, the report
  // bench_test leaves for a look).
  const std::string binary_dir = HPT_BINARY_DIR;
  const std::string manifest = binary_dir + "/install_manifest.txt";
  for (const auto& [path, stamp] : after) {
    if (path == manifest || path.rfind(binary_dir + "/Testing/", 0) == 0 || path.rfind(binary_dir + "/bench_test/", 0) == 0)
      continue;
    auto was = before.find(path);
    EXPECT_TRUE(was != before.end()) << "install created " << path << " in the build tree";
    if (was != before.end()) EXPECT_EQ(was->second, stamp) << "install changed " << path << " in the build tree";
  }
  EXPECT_TRUE(fs::exists(prefix + "/include/hpt/plugin.hpp"));
  EXPECT_TRUE(fs::exists(prefix + "/lib/hpt/plugins/hpt_backend_cpu.so"));

  // From another folder, without HPT_PLUGIN_PATH: the installed plugins, not the build's.
  const std::string elsewhere = dir.path() + "/elsewhere", log = dir.path() + "/plugins.log";
  fs::create_directories(elsewhere);
  ASSERT_EQ(sh("cd " + elsewhere + " && env -u HPT_PLUGIN_PATH " + prefix + "/bin/hpt plugins --kind optimizer", log), 0)
      << read_file(log);
  const std::string listed = read_file(log);
  EXPECT_THAT(listed, HasSubstr("from " + fs::weakly_canonical(prefix).string() + "/lib/hpt/plugins/hpt_optimizer_adam.so"));
  EXPECT_EQ(listed.find(std::string(HPT_BINARY_DIR) + "/plugins"), std::string::npos) << listed;
  // A one-sided range reads as an inequality, not "[0..]" (which suggests inf is allowed).
  EXPECT_THAT(listed, HasSubstr("float >= 0: base learning rate"));
  EXPECT_EQ(listed.find("..]"), std::string::npos) << listed;

  // The presets, installed to share/hpt/presets and searched there first.
  EXPECT_TRUE(fs::exists(prefix + "/share/hpt/presets/hybrid_linear.toml"));
  const std::string preset_log = dir.path() + "/preset.log";
  EXPECT_NE(sh("cd " + elsewhere + " && " + prefix + "/bin/hpt validate " + HPT_SOURCE_DIR +
                   "/configs/fm16_baseline.toml run.preset=no_such_preset",
               preset_log),
            0);
  EXPECT_THAT(read_file(preset_log),
              HasSubstr("searched " + fs::weakly_canonical(prefix).string() + "/share/hpt/presets"));

  // `hpt tune`'s Optuna driver, installed to share/hpt/tune and run from there (echo
  // stands in for python and prints the driver's path).
  EXPECT_TRUE(fs::exists(prefix + "/share/hpt/tune/hpt_tune.py"));
  const std::string tune_log = dir.path() + "/tune.log";
  sh("cd " + elsewhere + " && HPT_PYTHON=/bin/echo " + prefix + "/bin/hpt tune " + HPT_SOURCE_DIR +
         "/bench/tune_fm16.toml 'tune.runs_dir=\"" + dir.path() + "/tune\"'",
     tune_log);
  EXPECT_THAT(read_file(tune_log), HasSubstr(fs::weakly_canonical(prefix).string() + "/share/hpt/tune/hpt_tune.py " +
                                             dir.path() + "/tune/spec.json"));
}

TEST(OutOfTreePlugin, DocumentedExamplesBuildAgainstTheInstalledSdkTrainAndResume) {
  TempDir dir;
  const std::string prefix = dir.path() + "/prefix", src = dir.path() + "/src", build = dir.path() + "/build";
  fs::create_directories(src);
  install_into(prefix, dir.path() + "/install.log");

  auto files = extract_files(read_file(std::string(HPT_SOURCE_DIR) + "/docs/writing-plugins.md"), src);
  ASSERT_EQ(files, (std::vector<std::string>{"line_task.cpp", "momentum_optimizer.cpp", "plain_backend.cpp",
                                             "repeat_dynamics.cpp", "threshold_correction.cpp", "periodic_phase.cpp",
                                             "folder_checkpointer.cpp", "CMakeLists.txt", "examples.toml"}));

  ASSERT_EQ(sh("cmake -S " + src + " -B " + build + " -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + prefix,
               dir.path() + "/configure.log"),
            0)
      << read_file(dir.path() + "/configure.log");
  ASSERT_EQ(sh("cmake --build " + build + " -j2", dir.path() + "/build.log"), 0) << read_file(dir.path() + "/build.log");
  for (const char* so : {"task_line", "optimizer_momentum", "backend_plain", "dynamics_repeat", "correction_threshold",
                         "phase_periodic", "checkpointer_folder"})
    EXPECT_TRUE(fs::exists(build + "/hpt_" + so + ".so")) << so;

  auto listed = run_hpt({"plugins", "--kind", "phase", "--dir", build});
  EXPECT_EQ(listed.code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("periodic"));
  EXPECT_THAT(listed.out, HasSubstr("period = 20"));

  // The page's manifest, with the plugins from this build: a hybrid run of the seven.
  const std::string manifest = src + "/examples.toml", runs = dir.path() + "/runs";
  const std::vector<std::string> here = {"run.plugin_dirs=[\"" + build + "\"]", "run.runs_dir=\"" + runs + "\""};
  std::vector<std::string> args = {"run", manifest, "--no-progress"};
  args.insert(args.end(), here.begin(), here.end());
  auto r = run_hpt(args);
  ASSERT_EQ(r.code, 0) << r.err;
  std::string summary = read_file(runs + "/examples/summary.json");
  for (const char* plugin : {"line 1.0.0", "momentum 1.0.0", "plain 1.0.0", "repeat 1.0.0", "threshold 1.0.0",
                             "periodic 1.0.0", "folder 1.0.0"})
    EXPECT_THAT(summary, HasSubstr(plugin));
  EXPECT_THAT(summary, HasSubstr("\"steps\":40,"));
  EXPECT_EQ(summary.find("\"predicted_steps\":0,"), std::string::npos) << summary;
  EXPECT_TRUE(fs::exists(runs + "/examples/saved/step_40/optimizer.pt"));

  // Resumed from the folder checkpointer's step 40: every plugin's load() after bind().
  auto resumed = run_hpt({"resume", runs + "/examples", "run.max_steps=60", "--no-progress"});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_THAT(read_file(runs + "/examples/hpt.log"), HasSubstr("resumed from " + runs + "/examples/saved/step_40"));
  EXPECT_THAT(read_file(runs + "/examples/summary.json"), HasSubstr("\"steps\":60,"));
}

}  // namespace
