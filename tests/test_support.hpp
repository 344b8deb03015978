// Helpers shared by the tests: temporary directories, manifests, running the hpt CLI.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/cli.hpp"
#include "plugins/plugin_loader.hpp"

namespace hpt::test {

// A fresh directory under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    auto base = std::filesystem::temp_directory_path() / "hpt-test";
    std::filesystem::create_directories(base);
    std::string tmpl = (base / "XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

// Runs `hpt ARGS...` in this process.
inline CliResult run_hpt(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = host::run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Option values by name, for make_plugin.
using Overrides = std::map<std::string, OptionValue>;

// The loader over build/plugins, shared by a test executable.
inline host::PluginLoader& built_plugins() {
  static host::PluginLoader loader({std::string(HPT_BINARY_DIR) + "/plugins"});
  return loader;
}

// Creates built plugin (kind, name) with its defaults and `overrides`, which must be
// declared options.
template <class Interface>
std::shared_ptr<Interface> make_plugin(PluginKind kind, const std::string& name, const Overrides& overrides = {},
                                       std::uint64_t seed = 0) {
  auto info = built_plugins().find(kind, name);
  Options options = Options::defaults(info->options);
  for (const auto& [key, value] : overrides) {
    EXPECT_TRUE(options.has(key)) << name << " declares no option '" << key << "'";
    options.set(key, value);
  }
  PluginContext context;
  context.seed = seed;
  return built_plugins().create<Interface>(*info, context, options);
}

}  // namespace hpt::test
