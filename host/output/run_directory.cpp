#include "output/run_directory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "hpt/error.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw RunError("cannot write " + tmp + ": " + std::strerror(errno));
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw RunError("cannot write " + tmp + ": " + std::strerror(err));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw RunError("cannot write " + tmp + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());  // nothing half-done is left behind
    throw RunError("cannot write " + path + ": " + std::strerror(err));
  }
}

RunDirectory::RunDirectory(const std::string& runs_dir, const std::string& name, bool resume, bool overwrite) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
    throw BadInput("run.name '" + name + "' cannot name a directory (no '/', not empty)");
  fs::path dir = fs::path(runs_dir) / name;
  path_ = dir.string();
  std::error_code ec;
  fresh_ = !fs::exists(dir, ec) || !resume;
  if (fs::exists(dir, ec) && !resume) {
    bool empty = fs::is_directory(dir, ec) && fs::directory_iterator(dir, ec) == fs::directory_iterator();
    if (!empty && !overwrite)
      throw BadInput("run directory " + path_ +
                     " already exists; continue it with `hpt resume " + path_ +
                     "`, pick another name (run.name=...), or pass --overwrite to replace it");
    if (!empty) fs::remove_all(dir, ec);
  }
  fs::create_directories(dir, ec);
  if (ec) throw RunError("cannot create run directory " + path_ + ": " + ec.message());
}

void RunDirectory::remove_if_fresh() {
  if (!fresh_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void RunDirectory::write_file(const std::string& name, const std::string& text) const {
  write_file_atomic(file(name), text);
}

std::shared_ptr<spdlog::logger> make_run_logger(const std::string& run_dir, const std::string& console_level) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(spdlog::level::from_str(console_level));
  console->set_pattern("%^[%l]%$ %v");
  std::vector<spdlog::sink_ptr> sinks{console};
  if (!run_dir.empty()) {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(run_dir + "/hpt.log");
    file->set_level(spdlog::level::debug);
    file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    sinks.push_back(file);
  }
  auto logger = std::make_shared<spdlog::logger>("hpt", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::debug);
  logger->flush_on(spdlog::level::warn);
  return logger;
}

void flush_or_throw(std::ostream& out, const std::string& path) {
  errno = 0;
  out.flush();
  if (!out) {
    const int err = errno;
    throw RunError("cannot write " + path + (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
  }
}

}  // namespace hpt::host
