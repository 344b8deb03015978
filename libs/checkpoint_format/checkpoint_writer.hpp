// Crash-safe writing of checkpoint directories on POSIX file systems: a checkpoint is
// written complete into a temporary directory beside its final place, every file and
// the directory fsynced, then renamed into place and the parent fsynced. A reader
// therefore sees either no checkpoint or a complete one, never a partial one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint_format/checkpoint_manifest.hpp"
#include "hpt/checkpointer.hpp"

namespace hpt::checkpoint {

// Temporary entries (directories being written or deleted, pointer links being
// replaced) start with this prefix; they are never checkpoints.
inline constexpr const char* kTempPrefix = ".tmp-";

// Writes `bytes` into a new file `path` (it must not exist yet) and fsyncs it.
// Throws hpt::RunError naming the file and the system's reason.
void write_file_durably(const std::filesystem::path& path, std::string_view bytes);

// fsyncs directory `dir`, so that the entries created, renamed or removed in it last.
void fsync_directory(const std::filesystem::path& dir);

// What write_checkpoint does when `final_dir` exists already.
enum class WhenExists {
  Refuse,   // throw hpt::BadInput before writing anything
  Replace,  // write the new checkpoint completely, then swap it with the old one
            // atomically (renameat2 RENAME_EXCHANGE) and delete the old one
};

// Writes `files` and their manifest.json as the checkpoint directory `final_dir`
// through <parent>/.tmp-<name>-<pid>; returns the manifest written. The parent
// directory must exist.
Manifest write_checkpoint(const std::filesystem::path& final_dir, std::int64_t step,
                          const std::vector<CheckpointFile>& files, const Metrics& metrics, WhenExists when_exists);

// Removes directory `dir` and everything in it, renaming it to a .tmp- name first so
// that a crash halfway never leaves something that looks like a checkpoint.
void remove_checkpoint(const std::filesystem::path& dir);

// Makes `link` a symbolic link to `target` (a name relative to the link's directory),
// replacing any previous link atomically (new link under a .tmp- name, then rename).
void replace_symlink(const std::filesystem::path& link, const std::string& target);

}  // namespace hpt::checkpoint
