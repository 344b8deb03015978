#include "checkpoint_format/checkpoint_compression.hpp"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <memory>
#include <new>

#include "hpt/error.hpp"

namespace hpt::checkpoint {

namespace {

// A valid frame cannot hold more than this many bytes of content per byte stored: a
// 128 KiB block stored as one repeated byte takes 4 bytes (3 of header, 1 of content).
// A header claiming more is damaged; checking first keeps it from allocating that much.
constexpr unsigned long long kMaxZstdRatio = ZSTD_BLOCKSIZE_MAX / 4;

struct ZstdFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

[[noreturn]] void damaged(const std::string& what, const std::string& why) {
  throw BadInput(what + " is a damaged zstd frame (" + why + ")");
}

// Decompresses a frame whose content size is not in its header (written by a stream, as
// `zstd` does from a pipe) or several concatenated frames, growing the output as it goes.
std::string decompress_streaming(ZSTD_DCtx* context, const std::string& bytes, const std::string& what) {
  ZSTD_DCtx_reset(context, ZSTD_reset_session_only);
  std::string out;
  out.reserve(std::min<std::size_t>(bytes.size() * 4, std::size_t{1} << 30));
  ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
  const std::size_t chunk = ZSTD_DStreamOutSize();
  std::size_t left = 1;  // ZSTD_decompressStream's answer: 0 once a frame is complete
  while (in.pos < in.size || left != 0) {
    const std::size_t before = out.size();
    out.resize(before + std::max(chunk, out.capacity() - before));
    ZSTD_outBuffer dst{out.data() + before, out.size() - before, 0};
    const std::size_t in_before = in.pos;
    left = ZSTD_decompressStream(context, &dst, &in);
    out.resize(before + dst.pos);
    if (ZSTD_isError(left)) damaged(what, ZSTD_getErrorName(left));
    if (left != 0 && in.pos == in.size && in.pos == in_before && dst.pos == 0)
      damaged(what, "it ends in the middle of a frame: truncated");
  }
  return out;
}

}  // namespace

int zstd_min_level() { return ZSTD_minCLevel(); }
int zstd_max_level() { return ZSTD_maxCLevel(); }

bool is_zstd_frame(std::string_view bytes) {
  if (bytes.size() < 4) return false;
  const auto b = [&](std::size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[i])); };
  return (b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24) == ZSTD_MAGICNUMBER;
}

std::string zstd_compress(std::string_view bytes, int level) {
  std::unique_ptr<ZSTD_CCtx, ZstdFree> context(ZSTD_createCCtx());
  if (!context) throw std::bad_alloc();
  auto check = [](std::size_t code) {
    if (ZSTD_isError(code)) throw RunError(std::string("zstd compression failed: ") + ZSTD_getErrorName(code));
  };
  check(ZSTD_CCtx_setParameter(context.get(), ZSTD_c_compressionLevel, level));
  check(ZSTD_CCtx_setParameter(context.get(), ZSTD_c_checksumFlag, 1));
  check(ZSTD_CCtx_setParameter(context.get(), ZSTD_c_contentSizeFlag, 1));
  std::string out;
  out.resize(ZSTD_compressBound(bytes.size()));
  const std::size_t size = ZSTD_compress2(context.get(), out.data(), out.size(), bytes.data(), bytes.size());
  check(size);
  out.resize(size);
  return out;
}

void decompress_if_zstd(std::string& bytes, const std::string& what) {
  if (!is_zstd_frame(bytes)) return;
  std::unique_ptr<ZSTD_DCtx, ZstdFree> context(ZSTD_createDCtx());
  if (!context) throw std::bad_alloc();
  const unsigned long long declared = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) damaged(what, "its frame header is invalid or cut short");
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    bytes = decompress_streaming(context.get(), bytes, what);
    return;
  }
  if (declared / kMaxZstdRatio > bytes.size())
    damaged(what, "its header declares " + std::to_string(declared) + " bytes of content, more than " +
                      std::to_string(bytes.size()) + " stored bytes can hold");
  // The usual case, a frame hpt wrote: one pass straight into a buffer of the declared size.
  std::string out(static_cast<std::size_t>(declared), '\0');
  const std::size_t size = ZSTD_decompressDCtx(context.get(), out.data(), out.size(), bytes.data(), bytes.size());
  if (ZSTD_isError(size)) {
    // More content than the first frame declares: concatenated frames.
    if (ZSTD_getErrorCode(size) == ZSTD_error_dstSize_tooSmall) {
      bytes = decompress_streaming(context.get(), bytes, what);
      return;
    }
    damaged(what, ZSTD_getErrorName(size));
  }
  out.resize(size);
  bytes.swap(out);
}

}  // namespace hpt::checkpoint
