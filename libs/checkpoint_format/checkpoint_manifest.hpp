// The manifest.json of a checkpoint directory: what it holds (every file with its size
// and SHA-256), which step and metrics, and which hpt and LibTorch wrote it. Reading a
// checkpoint verifies every file against it. Shared by the `torch` checkpointer plugin
// and the host's checkpoint tools (export, average).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hpt/checkpointer.hpp"
#include "hpt/types.hpp"

namespace hpt::checkpoint {

// The layout version this code writes and the newest it reads.
inline constexpr std::int64_t kFormatVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";

struct ManifestEntry {
  std::string name;    // a plain file name inside the checkpoint directory
  std::uint64_t size = 0;
  std::string sha256;  // 64 lower-case hex digits
};

struct Manifest {
  std::int64_t format_version = kFormatVersion;
  std::string hpt_version;
  std::string torch_version;
  std::string created;  // UTC, ISO-8601: 2024-05-01T12:34:56Z
  std::int64_t step = 0;
  Metrics metrics;
  std::vector<ManifestEntry> files;  // in the order the files were given
};

// SHA-256 of `bytes` as 64 lower-case hex digits (OpenSSL EVP).
std::string sha256_hex(std::string_view bytes);

// The current time in UTC as ISO-8601 with a trailing Z.
std::string utc_now_iso8601();

// A manifest describing `files` for step `step`, stamped with this build's versions and now.
Manifest make_manifest(std::int64_t step, const std::vector<CheckpointFile>& files, const Metrics& metrics);

// manifest.json text (Boost.JSON), and back. parse_manifest throws hpt::BadInput naming
// `checkpoint_dir` when the text is not a manifest, or is of a newer format version.
std::string manifest_to_json(const Manifest& manifest);
Manifest parse_manifest(const std::string& text, const std::string& checkpoint_dir);

// Reads and parses <checkpoint_dir>/manifest.json; throws hpt::BadInput when it is
// missing, unreadable or not a manifest.
Manifest read_manifest(const std::string& checkpoint_dir);

// A checkpoint read back from disk, every file checked against the manifest.
struct VerifiedCheckpoint {
  Manifest manifest;
  std::vector<CheckpointFile> files;  // in manifest order
};

// Reads every file the manifest lists and checks its size and SHA-256, hashing each
// file in the same pass that reads it (big files: read on a second thread while this
// one hashes). Throws hpt::BadInput naming the checkpoint and the file that is missing,
// truncated or corrupt. Sizes and hashes are those of the stored bytes; a file stored
// compressed (checkpoint_compression.hpp) comes back decompressed, as it was given to save.
VerifiedCheckpoint read_checkpoint(const std::string& checkpoint_dir);

}  // namespace hpt::checkpoint
