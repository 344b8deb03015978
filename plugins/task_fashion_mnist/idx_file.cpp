#include "idx_file.hpp"

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <vector>

#include "hpt/error.hpp"

namespace hpt::data {

namespace {

std::vector<unsigned char> read_all(const std::string& path, const std::string& missing_hint) {
  if (!std::filesystem::exists(path))
    throw BadInput("missing data file " + path + (missing_hint.empty() ? "" : ": " + missing_hint));
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (f == nullptr) throw BadInput("cannot open " + path);
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  std::string error = (n < 0 && msg) ? msg : "";
  gzclose(f);
  if (n < 0) throw BadInput("cannot read " + path + ": " + error);
  return out;
}

}  // namespace

torch::Tensor read_idx(const std::string& path, const std::string& missing_hint) {
  std::vector<unsigned char> bytes = read_all(path, missing_hint);
  // Header: two zero bytes, a type code (0x08: unsigned byte), the number of dimensions,
  // then one big-endian 32-bit size per dimension.
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0)
    throw BadInput(path + " is not an IDX file (bad magic number)");
  if (bytes[2] != 0x08) throw BadInput(path + ": IDX element type " + std::to_string(bytes[2]) + " is not unsigned byte");
  const std::size_t ndim = bytes[3];
  if (ndim == 0 || bytes.size() < 4 + 4 * ndim) throw BadInput(path + ": truncated IDX header");
  std::vector<std::int64_t> shape;
  std::size_t count = 1;
  for (std::size_t d = 0; d < ndim; ++d) {
    const unsigned char* p = &bytes[4 + 4 * d];
    std::int64_t size = (std::int64_t(p[0]) << 24) | (std::int64_t(p[1]) << 16) | (std::int64_t(p[2]) << 8) | p[3];
    shape.push_back(size);
    count *= static_cast<std::size_t>(size);
  }
  const std::size_t offset = 4 + 4 * ndim;
  if (bytes.size() - offset != count)
    throw BadInput(path + ": IDX data holds " + std::to_string(bytes.size() - offset) + " bytes, its header says " +
                   std::to_string(count) + " (truncated or corrupt file)");
  torch::Tensor t = torch::empty(shape, torch::kUInt8);
  std::memcpy(t.data_ptr<std::uint8_t>(), bytes.data() + offset, count);
  return t;
}

}  // namespace hpt::data
