// TFRecord framing, the container of TensorBoard's event files: each record is
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes |
//   data | uint32 masked CRC-32C of the data
// with mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. The CRC is Boost.CRC's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hpt::host {

std::uint32_t masked_crc32c(std::string_view bytes);

// `data` framed as one record.
std::string tfrecord_frame(std::string_view data);

// The records of a file's `bytes`, in order, up to the first that is cut short or fails
// its checksums (a crash while writing it): what a reader can trust.
// `trusted_bytes` (optional) receives how many bytes those records take.
std::vector<std::string> tfrecord_records(std::string_view bytes, std::size_t* trusted_bytes = nullptr);

}  // namespace hpt::host
