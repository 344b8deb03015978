// The text a character-level language model learns: read from a file or a folder of
// files, and encoded with a byte vocabulary built from the text itself.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <torch/types.h>

namespace hpt::char_lm {

// The bytes of `path`: a file as it is, or a folder's plain files -- those without an
// extension (so fortune's .dat indexes and .u8 links are skipped), not links, not
// subfolders -- concatenated in sorted name order. Throws hpt::BadInput naming `path`
// when it is missing or holds no text; `missing_hint` is added to that message.
std::string read_corpus(const std::string& path, const std::string& missing_hint);

// The sorted set of bytes of a text; byte b has id position-in-the-set.
class ByteVocabulary {
 public:
  explicit ByteVocabulary(const std::string& text);

  std::int64_t size() const { return static_cast<std::int64_t>(bytes_.size()); }
  // The vocabulary's bytes, in id order: ByteVocabulary(bytes()) is this vocabulary again.
  const std::string& bytes() const { return bytes_; }
  bool contains(unsigned char byte) const { return id_of_byte_[byte] >= 0; }

  // The ids of every byte of `text` (each must be in the vocabulary), a uint8 tensor.
  torch::Tensor encode(const std::string& text) const;
  // The bytes of `ids` (integers < size()).
  std::string decode(const torch::Tensor& ids) const;

 private:
  std::array<std::int16_t, 256> id_of_byte_{};  // -1: not in the vocabulary
  std::string bytes_;                           // byte of each id
};

}  // namespace hpt::char_lm
