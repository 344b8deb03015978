// Helpers shared by the tests: temporary directories, manifests, running the hpt CLI.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli.hpp"

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

}  // namespace hpt::test
