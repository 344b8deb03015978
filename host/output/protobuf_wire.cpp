#include "output/protobuf_wire.hpp"

#include <algorithm>
#include <cstring>

namespace hpt::host {

namespace {
enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// Reads a varint at `at`, advancing it; false when the message ends inside it.
bool read_proto_varint(std::string_view m, std::size_t& at, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && at < m.size(); shift += 7) {
    const auto byte = static_cast<unsigned char>(m[at++]);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}
}  // namespace

void ProtoMessage::raw_varint(std::uint64_t value) {
  while (value >= 0x80) {
    data_.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  data_.push_back(static_cast<char>(value));
}

void ProtoMessage::key(int field, int wire_type) {
  raw_varint((static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint64_t>(wire_type));
}

void ProtoMessage::little_endian(std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) data_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

ProtoMessage& ProtoMessage::varint(int field, std::uint64_t value) {
  key(field, kVarint);
  raw_varint(value);
  return *this;
}

ProtoMessage& ProtoMessage::float64(int field, double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  key(field, kFixed64);
  little_endian(bits, 8);
  return *this;
}

ProtoMessage& ProtoMessage::float32(int field, float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  key(field, kFixed32);
  little_endian(bits, 4);
  return *this;
}

ProtoMessage& ProtoMessage::bytes(int field, std::string_view value) {
  key(field, kLengthDelimited);
  raw_varint(value.size());
  data_.append(value.data(), value.size());
  return *this;
}

ProtoMessage& ProtoMessage::message(int field, const ProtoMessage& value) { return bytes(field, value.data()); }

std::optional<std::uint64_t> proto_varint_field(std::string_view m, int field) {
  std::size_t at = 0;
  while (at < m.size()) {
    std::uint64_t key = 0, value = 0;
    if (!read_proto_varint(m, at, key)) return std::nullopt;
    const int wire_type = static_cast<int>(key & 7);
    const bool wanted = static_cast<int>(key >> 3) == field;
    switch (wire_type) {
      case kVarint:
        if (!read_proto_varint(m, at, value)) return std::nullopt;
        if (wanted) return value;
        break;
      case kFixed64:
        at += 8;
        break;
      case kFixed32:
        at += 4;
        break;
      case kLengthDelimited:
        if (!read_proto_varint(m, at, value) || value > m.size() - std::min(at, m.size())) return std::nullopt;
        at += static_cast<std::size_t>(value);
        break;
      default:
        return std::nullopt;  // groups (3, 4) and unknown types: not in an Event
    }
  }
  return std::nullopt;
}

}  // namespace hpt::host
