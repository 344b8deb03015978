// The protobuf wire format, written by hand for TensorBoard's event files. hpt writes a
// handful of fields of a schema that has not changed in years (tensorflow/core/util/event.proto
// and tensorflow/core/framework/summary.proto, tensor.proto): linking libprotobuf and
// generating code for them would cost more (a library, a code generator in the build, a
// copy of the .proto files) than these few lines: varints, fixed64/fixed32 and
// length-delimited fields. Reading is limited to what resuming needs: a top-level varint
// field (an Event's step).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hpt::host {

// One message being encoded; fields are appended in the order they are added.
class ProtoMessage {
 public:
  ProtoMessage& varint(int field, std::uint64_t value);   // int32, int64 (non-negative), enum, bool
  ProtoMessage& float64(int field, double value);         // double: fixed64
  ProtoMessage& float32(int field, float value);          // float: fixed32
  ProtoMessage& bytes(int field, std::string_view value); // string, bytes: length-delimited
  ProtoMessage& message(int field, const ProtoMessage& value);
  const std::string& data() const { return data_; }

 private:
  void key(int field, int wire_type);
  void raw_varint(std::uint64_t value);
  void little_endian(std::uint64_t bits, int bytes);
  std::string data_;
};

// The value of the first top-level varint field `field` of `message`, or nullopt when it
// has none or the message is malformed.
std::optional<std::uint64_t> proto_varint_field(std::string_view message, int field);

}  // namespace hpt::host
