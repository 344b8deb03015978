#include "checkpoint/zip_check.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "hpt/error.hpp"

// Written by hand because nothing we link does it: LibTorch's zip reader (miniz, built
// with MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS) does not verify CRC-32s, and its TorchScript
// parser crashes on some damaged records (scripts/fuzz.sh checkpoint_model found a SEGV
// in torch::jit::ScriptTypeParser on a model.pt with one byte of code/__torch__.py changed).
// A checkpoint's files are also covered by SHA-256 in its manifest.json; this check is for
// the archive on its own and names the damaged record. Zip layout: PKWARE APPNOTE 6.3.

namespace hpt::host {

namespace {

class Damaged {
 public:
  explicit Damaged(const std::string& what) : what_(what) {}
  [[noreturn]] void fail(const std::string& why) const { throw BadInput(what_ + " is damaged: " + why); }

 private:
  const std::string& what_;
};

std::uint64_t read_le(std::string_view bytes, std::uint64_t at, int size, const Damaged& damaged) {
  if (at > bytes.size() || bytes.size() - at < static_cast<std::uint64_t>(size)) damaged.fail("a zip header runs past its end");
  std::uint64_t v = 0;
  for (int i = size - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + static_cast<std::uint64_t>(i)]);
  return v;
}

// A raw deflate stream that must inflate to exactly `size` bytes.
std::string inflate_raw(std::string_view in, std::size_t size, const std::string& name, const Damaged& damaged) {
  std::string out(size, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw std::bad_alloc();
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int result = inflate(&z, Z_FINISH);
  const std::size_t produced = z.total_out;
  inflateEnd(&z);
  if (result != Z_STREAM_END || produced != size) damaged.fail("record '" + name + "' does not inflate to its size");
  return out;
}

constexpr std::uint32_t kEndOfDirectory = 0x06054b50, kZip64Locator = 0x07064b50, kZip64End = 0x06064b50;
constexpr std::uint32_t kDirectoryEntry = 0x02014b50, kLocalHeader = 0x04034b50;

}  // namespace

void check_zip_records(std::string_view bytes, const std::string& what) {
  const Damaged damaged(what);
  auto u16 = [&](std::uint64_t at) { return read_le(bytes, at, 2, damaged); };
  auto u32 = [&](std::uint64_t at) { return read_le(bytes, at, 4, damaged); };
  auto u64 = [&](std::uint64_t at) { return read_le(bytes, at, 8, damaged); };

  // The end-of-central-directory record: the last one within its comment's reach.
  if (bytes.size() < 22) damaged.fail("too short for a zip archive");
  std::uint64_t end = bytes.size() - 22;
  const std::uint64_t lowest = bytes.size() > 22 + 0xFFFF ? bytes.size() - 22 - 0xFFFF : 0;
  while (u32(end) != kEndOfDirectory) {
    if (end == lowest) damaged.fail("no zip end-of-directory record");
    --end;
  }
  std::uint64_t entries = u16(end + 10), directory_size = u32(end + 12), directory = u32(end + 16);
  if (entries == 0xFFFF || directory_size == 0xFFFFFFFF || directory == 0xFFFFFFFF) {
    if (end < 20 || u32(end - 20) != kZip64Locator) damaged.fail("no zip64 locator");
    const std::uint64_t end64 = u64(end - 20 + 8);
    if (u32(end64) != kZip64End) damaged.fail("no zip64 end-of-directory record");
    entries = u64(end64 + 32);
    directory_size = u64(end64 + 40);
    directory = u64(end64 + 48);
  }
  if (directory > bytes.size() || bytes.size() - directory < directory_size) damaged.fail("the zip directory lies outside the file");

  std::uint64_t at = directory;
  for (std::uint64_t i = 0; i < entries; ++i) {
    if (u32(at) != kDirectoryEntry) damaged.fail("zip directory entry " + std::to_string(i) + " is not one");
    const std::uint64_t method = u16(at + 10), name_length = u16(at + 28), extra_length = u16(at + 30),
                        comment_length = u16(at + 32);
    const auto crc = static_cast<std::uint32_t>(u32(at + 16));
    std::uint64_t size = u32(at + 24), compressed = u32(at + 20), local = u32(at + 42);
    if (at + 46 + name_length > bytes.size()) damaged.fail("a zip entry's name runs past the end");
    const std::string name(bytes.substr(at + 46, name_length));
    // Sizes and offset too large for 32 bits are in the zip64 extra field, in this order.
    for (std::uint64_t e = at + 46 + name_length; e + 4 <= at + 46 + name_length + extra_length;) {
      const std::uint64_t id = u16(e), length = u16(e + 2);
      if (id == 0x0001) {
        std::uint64_t field = e + 4;
        if (size == 0xFFFFFFFF) {
          size = u64(field);
          field += 8;
        }
        if (compressed == 0xFFFFFFFF) {
          compressed = u64(field);
          field += 8;
        }
        if (local == 0xFFFFFFFF) local = u64(field);
      }
      e += 4 + length;
    }
    if (method != 0 && method != 8) damaged.fail("record '" + name + "' uses zip method " + std::to_string(method));
    if (method == 0 && compressed != size) damaged.fail("record '" + name + "' has two sizes");
    if (u32(local) != kLocalHeader) damaged.fail("record '" + name + "' has no local header");
    const std::uint64_t data = local + 30 + u16(local + 26) + u16(local + 28);
    if (data > bytes.size() || bytes.size() - data < compressed) damaged.fail("record '" + name + "' runs past the end");
    std::string_view stored = bytes.substr(data, compressed);
    std::string inflated;
    if (method == 8) {  // deflated (LibTorch compresses its code records): inflate first
      if (size > (std::uint64_t{1} << 30) || compressed > std::numeric_limits<uInt>::max()) damaged.fail("record '" + name + "' claims " + std::to_string(size) + " bytes");
      inflated = inflate_raw(stored, static_cast<std::size_t>(size), name, damaged);
      stored = inflated;
    }
    uLong actual = crc32(0L, Z_NULL, 0);
    for (std::size_t done = 0; done < stored.size();) {  // zlib's crc32 takes at most a uInt at a time
      const auto chunk = static_cast<uInt>(std::min<std::size_t>(stored.size() - done, std::numeric_limits<uInt>::max()));
      actual = crc32(actual, reinterpret_cast<const Bytef*>(stored.data() + done), chunk);
      done += chunk;
    }
    if (static_cast<std::uint32_t>(actual) != crc) damaged.fail("record '" + name + "' fails its CRC-32");
    at += 46 + name_length + extra_length + comment_length;
  }
}

}  // namespace hpt::host
