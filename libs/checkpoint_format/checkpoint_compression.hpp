// Compressed checkpoint files: `[checkpointer] compression = "zstd"` stores each file of
// a checkpoint as one zstd frame (Debian's libzstd), under its usual name. The manifest's
// sizes and SHA-256 are those of the stored (compressed) bytes, so verification is the
// same for both kinds; what a file holds is decided here, in one place, by the zstd
// frame magic at its start: every reader (resume, eval, sample, export, average,
// task.init_from) goes through decompress_if_zstd, and a directory mixing older
// uncompressed and newer compressed checkpoints loads. None of hpt's own files (zip
// archives, pickles, JSON, TOML) can start with that magic.
#pragma once

#include <string>
#include <string_view>

namespace hpt::checkpoint {

// What `[checkpointer] compression` names.
inline constexpr const char* kCompressionNone = "none";
inline constexpr const char* kCompressionZstd = "zstd";

// zstd's levels (ZSTD_minCLevel() .. ZSTD_maxCLevel() of libzstd 1.5: negative levels are
// its fast modes) and the default, zstd's own.
int zstd_min_level();
int zstd_max_level();
inline constexpr int kZstdDefaultLevel = 3;

// True when `bytes` starts with the zstd frame magic (28 B5 2F FD).
bool is_zstd_frame(std::string_view bytes);

// `bytes` as one zstd frame at `level`, with the content size and a checksum of the content
// in its header, so a damaged frame is detected even where no manifest is checked.
// Single-threaded, so the frame is the same on every machine.
std::string zstd_compress(std::string_view bytes, int level);

// Replaces `bytes` by its content when it is a zstd frame (or several), else leaves it as
// it is. A frame that is truncated, damaged, or followed by other bytes is
// hpt::BadInput "<what> is a damaged zstd frame (...)".
void decompress_if_zstd(std::string& bytes, const std::string& what);

}  // namespace hpt::checkpoint
