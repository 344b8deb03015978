#include "text_corpus.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "hpt/error.hpp"

namespace hpt::char_lm {

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadInput("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string read_corpus(const std::string& path, const std::string& missing_hint) {
  std::error_code error;
  fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) throw BadInput("corpus " + path + " does not exist: " + missing_hint);
  if (!fs::is_directory(status)) return read_file(path);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(path)) {
    if (entry.is_symlink() || !entry.is_regular_file() || entry.path().has_extension()) continue;
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::string text;
  for (const auto& file : files) text += read_file(file);
  if (text.empty()) throw BadInput("corpus " + path + " holds no text files: " + missing_hint);
  return text;
}

ByteVocabulary::ByteVocabulary(const std::string& text) {
  std::array<bool, 256> present{};
  for (unsigned char c : text) present[c] = true;
  id_of_byte_.fill(-1);
  for (std::size_t b = 0; b < present.size(); ++b)
    if (present[b]) {
      id_of_byte_[b] = static_cast<std::int16_t>(bytes_.size());
      bytes_.push_back(static_cast<char>(b));
    }
}

torch::Tensor ByteVocabulary::encode(const std::string& text) const {
  torch::Tensor ids = torch::empty({static_cast<std::int64_t>(text.size())}, torch::kUInt8);
  std::uint8_t* out = ids.data_ptr<std::uint8_t>();
  for (std::size_t i = 0; i < text.size(); ++i) {
    std::int16_t id = id_of_byte_[static_cast<unsigned char>(text[i])];
    if (id < 0) throw BadInput("byte " + std::to_string(static_cast<unsigned char>(text[i])) + " is not in the vocabulary");
    out[i] = static_cast<std::uint8_t>(id);
  }
  return ids;
}

std::string ByteVocabulary::decode(const torch::Tensor& ids) const {
  torch::Tensor flat = ids.to(torch::kCPU, torch::kInt64).contiguous().reshape({-1});
  const std::int64_t* id = flat.data_ptr<std::int64_t>();
  std::string text;
  text.reserve(static_cast<std::size_t>(flat.numel()));
  for (std::int64_t i = 0; i < flat.numel(); ++i) text.push_back(bytes_.at(static_cast<std::size_t>(id[i])));
  return text;
}

}  // namespace hpt::char_lm
