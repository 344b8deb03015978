#include "checkpoint_format/checkpoint_writer.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <set>

#include "hpt/error.hpp"

namespace hpt::checkpoint {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& path, int error) {
  throw RunError("cannot " + what + " " + path.string() + ": " + std::strerror(error));
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw RunError("cannot rename " + from.string() + " to " + to.string() + ": " + std::strerror(errno));
}

// A temporary name beside `path`: <parent>/.tmp-<what><name>-<pid>.
fs::path temp_beside(const fs::path& path, const std::string& what) {
  return path.parent_path() / (std::string(kTempPrefix) + what + path.filename().string() + "-" +
                               std::to_string(::getpid()));
}

// Puts the complete checkpoint `fresh` where `existing` is, atomically when the file
// system can exchange two names; `fresh` then holds the old checkpoint.
void swap_into_place(const fs::path& fresh, const fs::path& existing) {
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, existing.c_str(), RENAME_EXCHANGE) == 0) return;
  if (errno != EINVAL && errno != ENOSYS)
    throw RunError("cannot exchange " + fresh.string() + " and " + existing.string() + ": " + std::strerror(errno));
  // No RENAME_EXCHANGE here: move the old one aside first. Between the two renames the
  // step is briefly absent, but both checkpoints stay complete.
  fs::path aside = temp_beside(existing, "replaced-");
  rename_or_fail(existing, aside);
  try {
    rename_or_fail(fresh, existing);
  } catch (...) {
    ::rename(aside.c_str(), existing.c_str());  // put the old one back
    throw;
  }
  rename_or_fail(aside, fresh);
}

void check_file_names(const std::vector<CheckpointFile>& files) {
  std::set<std::string> seen;
  for (const auto& f : files) {
    if (f.name.empty() || f.name == "." || f.name == ".." || f.name.find('/') != std::string::npos ||
        f.name == kManifestName || f.name.rfind(kTempPrefix, 0) == 0)
      throw RunError("checkpoint file name '" + f.name + "' is not allowed (a plain name, not manifest.json or .tmp-*)");
    if (!seen.insert(f.name).second) throw RunError("checkpoint file '" + f.name + "' is given twice");
  }
}

}  // namespace

void write_file_durably(const fs::path& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("create", path, errno);
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      fail("write", path, error);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int error = errno;
    ::close(fd);
    fail("fsync", path, error);
  }
  if (::close(fd) != 0) fail("close", path, errno);
}

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("open directory", dir, errno);
  if (::fsync(fd) != 0) {
    int error = errno;
    ::close(fd);
    fail("fsync directory", dir, error);
  }
  ::close(fd);
}

Manifest write_checkpoint(const fs::path& final_dir, std::int64_t step, const std::vector<CheckpointFile>& files,
                          const Metrics& metrics, WhenExists when_exists) {
  check_file_names(files);
  const fs::path parent = final_dir.parent_path().empty() ? fs::path(".") : final_dir.parent_path();
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(final_dir, ec));
  if (exists && when_exists == WhenExists::Refuse)
    throw BadInput(final_dir.string() + " exists already; a checkpoint is never overwritten: choose another path");

  const fs::path tmp = temp_beside(final_dir, "");
  fs::remove_all(tmp, ec);  // a leftover of a crashed process that had our pid
  if (!fs::create_directory(tmp, ec) || ec) throw RunError("cannot create " + tmp.string() + ": " + ec.message());
  try {
    // Hash on a second thread while this one writes: the two overlap on big models.
    auto hashing = std::async(std::launch::async, [&] { return make_manifest(step, files, metrics); });
    for (const auto& f : files) write_file_durably(tmp / f.name, f.bytes);
    Manifest manifest = hashing.get();
    write_file_durably(tmp / kManifestName, manifest_to_json(manifest));
    fsync_directory(tmp);
    if (exists)
      swap_into_place(tmp, final_dir);
    else
      rename_or_fail(tmp, final_dir);
    fsync_directory(parent);
    if (exists) fs::remove_all(tmp, ec);  // the replaced checkpoint; a leftover is cleaned up later
    return manifest;
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

void remove_checkpoint(const fs::path& dir) {
  fs::path doomed = temp_beside(dir, "deleting-");
  rename_or_fail(dir, doomed);
  std::error_code ec;
  fs::remove_all(doomed, ec);
  if (ec) throw RunError("cannot delete " + doomed.string() + ": " + ec.message());
}

void replace_symlink(const fs::path& link, const std::string& target) {
  fs::path tmp = temp_beside(link, "");
  std::error_code ec;
  fs::remove(tmp, ec);
  if (::symlink(target.c_str(), tmp.c_str()) != 0) fail("create symbolic link", tmp, errno);
  rename_or_fail(tmp, link);
  fsync_directory(link.parent_path().empty() ? fs::path(".") : link.parent_path());
}

}  // namespace hpt::checkpoint
