#include "checkpoint/zip_check.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <regex>
#include <set>
#include <sstream>

#include "hpt/error.hpp"

// Written by hand because nothing we link does it. LibTorch's zip reader (miniz, built
// with MINIZ_DISABLE_ZIP_READER_CRC32_CHECKS) does not verify CRC-32s, and while loading
// an archive LibTorch compiles the TorchScript class source in its code/ records with a
// parser that crashes on some damaged source: scripts/fuzz.sh checkpoint_model found a
// SEGV in torch::jit::ScriptTypeParser::parseClassConstant, first with one byte of
// code/__torch__.py changed, then (once CRC-32s were checked) with the directory's entry
// count set to zero so that no record was checked, and with a CRC-32 libFuzzer had
// recomputed. A checkpoint's files are also covered by SHA-256 in its manifest.json; this
// check covers the archive on its own and names what is wrong. Zip layout: PKWARE APPNOTE 6.3.

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

std::uint32_t crc_of(std::string_view data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (std::size_t done = 0; done < data.size();) {  // zlib's crc32 takes at most a uInt at a time
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(data.size() - done, std::numeric_limits<uInt>::max()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + done), chunk);
    done += chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

// `  __parameters__ = ["a", "b", ]` (or __buffers__): parsed by hand, as such a line is
// as long as the module has parameters, and std::regex recurses once per repetition.
bool is_name_list(const std::string& line) {
  std::size_t at;
  if (line.rfind("  __parameters__ = [", 0) == 0) at = 20;
  else if (line.rfind("  __buffers__ = [", 0) == 0) at = 17;
  else return false;
  while (at < line.size() && line[at] == '"') {
    const std::size_t close = line.find_first_of("\"\\", at + 1);
    if (close == std::string::npos || line[close] != '"' || line.compare(close + 1, 2, ", ") != 0) return false;
    at = close + 3;
  }
  return at + 1 == line.size() && line[at] == ']';
}

// The class source OutputArchive writes for a module archive, line by line.
void check_class_source(const std::string& source, const std::string& name, const Damaged& damaged) {
  // Names that are not identifiers ("0" in a Sequential) are annotated by string.
  static const std::regex header(R"(class Module\(Module\):)");
  static const std::regex annotations(R"(  __annotations__ = \[\])");
  static const std::regex attribute(
      R"(  ([A-Za-z_][A-Za-z0-9_]* :|__annotations__\["[^"\\]*"\] =) (Tensor|__torch__(\.[A-Za-z_][A-Za-z0-9_]*)*\.Module))");
  constexpr std::size_t kLongestAttributeLine = 4096;
  std::istringstream in(source);
  std::size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    bool ok;
    if (number == 1) ok = std::regex_match(line, header);
    else if (is_name_list(line)) ok = true;
    else ok = line.size() <= kLongestAttributeLine && (std::regex_match(line, annotations) || std::regex_match(line, attribute));
    if (!ok) damaged.fail("record '" + name + "' line " + std::to_string(number) + " is not a module's parameter list");
  }
  if (number == 0) damaged.fail("record '" + name + "' is empty");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

constexpr std::uint32_t kEndOfDirectory = 0x06054b50, kZip64Locator = 0x07064b50, kZip64End = 0x06064b50;
constexpr std::uint32_t kDirectoryEntry = 0x02014b50, kLocalHeader = 0x04034b50;

}  // namespace

void check_module_archive(std::string_view bytes, const std::string& what) {
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
  std::uint64_t on_this_disk = u16(end + 8), entries = u16(end + 10), directory_size = u32(end + 12),
                directory = u32(end + 16), directory_end = end;
  const bool zip64 = end >= 20 && u32(end - 20) == kZip64Locator;  // LibTorch writes one always
  if (zip64) {
    const std::uint64_t end64 = u64(end - 20 + 8);
    if (u32(end64) != kZip64End) damaged.fail("no zip64 end-of-directory record");
    on_this_disk = u64(end64 + 24);
    entries = u64(end64 + 32);
    directory_size = u64(end64 + 40);
    directory = u64(end64 + 48);
    directory_end = end64;
  } else if (entries == 0xFFFF || directory_size == 0xFFFFFFFF || directory == 0xFFFFFFFF) {
    damaged.fail("no zip64 locator");
  }
  if (entries == 0 || on_this_disk != entries) damaged.fail("its zip directory counts " + std::to_string(entries) + " entries");
  if (directory > directory_end || directory_end - directory != directory_size)
    damaged.fail("its zip directory does not end where the end record is");

  std::set<std::string> seen;
  std::uint64_t at = directory;
  for (std::uint64_t i = 0; i < entries; ++i) {
    if (u32(at) != kDirectoryEntry) damaged.fail("zip directory entry " + std::to_string(i) + " is not one");
    const std::uint64_t method = u16(at + 10), name_length = u16(at + 28), extra_length = u16(at + 30),
                        comment_length = u16(at + 32);
    const auto crc = static_cast<std::uint32_t>(u32(at + 16));
    std::uint64_t size = u32(at + 24), compressed = u32(at + 20), local = u32(at + 42);
    if (at + 46 + name_length > directory_end) damaged.fail("a zip entry's name runs past the directory");
    const std::string name(bytes.substr(at + 46, name_length));
    if (!seen.insert(name).second) damaged.fail("record '" + name + "' is in the zip directory twice");
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
    const std::uint64_t local_name_length = u16(local + 26);
    if (bytes.substr(local + 30, local_name_length) != name) damaged.fail("record '" + name + "' has another name in its local header");
    const std::uint64_t data = local + 30 + local_name_length + u16(local + 28);
    if (data > directory || directory - data < compressed) damaged.fail("record '" + name + "' runs into the zip directory");
    std::string_view stored = bytes.substr(data, compressed);
    std::string inflated;
    if (method == 8) {  // deflated (LibTorch compresses its code records): inflate first
      if (size > (std::uint64_t{1} << 30) || compressed > std::numeric_limits<uInt>::max())
        damaged.fail("record '" + name + "' claims " + std::to_string(size) + " bytes");
      inflated = inflate_raw(stored, static_cast<std::size_t>(size), name, damaged);
      stored = inflated;
    }
    if (crc_of(stored) != crc) damaged.fail("record '" + name + "' fails its CRC-32");
    // The TorchScript source LibTorch compiles while loading: only what a module archive holds.
    if (name.find("/code/") != std::string::npos && ends_with(name, ".py")) check_class_source(std::string(stored), name, damaged);
    at += 46 + name_length + extra_length + comment_length;
  }
  if (at != directory + directory_size) damaged.fail("its zip directory has bytes beyond its entries");
}

}  // namespace hpt::host
