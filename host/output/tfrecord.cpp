#include "output/tfrecord.hpp"

#include <boost/crc.hpp>

namespace hpt::host {

namespace {
void put_le(std::string& out, std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}
}  // namespace

std::uint32_t masked_crc32c(std::string_view bytes) {
  // CRC-32C (Castagnoli): reflected in and out, initial value and final xor all ones.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  const std::uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord_frame(std::string_view data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, masked_crc32c(std::string_view(out.data(), 8)), 4);
  out.append(data.data(), data.size());
  put_le(out, masked_crc32c(data), 4);
  return out;
}

std::vector<std::string> tfrecord_records(std::string_view bytes, std::size_t* trusted_bytes) {
  std::vector<std::string> records;
  std::size_t at = 0;
  while (bytes.size() - at >= 12) {
    const std::uint64_t length = get_le(bytes, at, 8);
    if (get_le(bytes, at + 8, 4) != masked_crc32c(bytes.substr(at, 8))) break;
    if (length > bytes.size() - at - 12 || bytes.size() - at - 12 - length < 4) break;
    std::string_view data = bytes.substr(at + 12, length);
    if (get_le(bytes, at + 12 + length, 4) != masked_crc32c(data)) break;
    records.emplace_back(data);
    at += 16 + length;
  }
  if (trusted_bytes) *trusted_bytes = at;
  return records;
}

}  // namespace hpt::host
