#include "output/csv_metrics.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <sstream>

#include "hpt/error.hpp"
#include "output/run_directory.hpp"

namespace hpt::host {

namespace {

// A number as Python's csv module writes a float: the shortest text that reads back
// to the same double; nan, inf, -inf.
std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, result.ptr);
}

// RFC 4180 quoting, as csv.writer does: only a cell with a comma, quote or line break.
std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string q = "\"";
  for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::vector<std::string> csv_cells(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cells.back() += line[++i];
      else if (c == '"') quoted = false;
      else cells.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else if (c != '\r') {
      cells.back() += c;
    }
  }
  return cells;
}

std::string csv_line(const std::vector<std::string>& cells) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + csv_cell(cells[i]);
  return line + "\r\n";  // csv.writer's default line terminator, as Lightning's file has
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

CsvMetrics::CsvMetrics(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  if (std::filesystem::exists(path_, ec)) {
    // A resumed run's file: its header, and no half-written last line.
    std::string text = read_whole_file(path_);
    std::size_t end = text.find('\n');
    if (end != std::string::npos) keys_ = csv_cells(text.substr(0, end));
    if (!text.empty() && text.back() != '\n') rewrite(std::nullopt);
  }
  open_for_append();
}

void CsvMetrics::open_for_append() {
  out_ = std::ofstream(path_, std::ios::binary | std::ios::app);
  if (!out_) throw RunError("cannot open " + path_ + " for writing");
}

void CsvMetrics::rewrite(std::optional<std::int64_t> through_step) {
  if (out_.is_open()) out_.close();
  const std::string text = read_whole_file(path_);
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> old_keys;
  std::string out;
  bool header = true;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no line break after it: written halfway
    std::vector<std::string> cells = csv_cells(line);
    if (header) {
      old_keys = cells;
      header = false;
      out += csv_line(keys_);
      continue;
    }
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < old_keys.size() && i < cells.size(); ++i) row[old_keys[i]] = cells[i];
    if (through_step) {
      std::int64_t step = 0;
      const std::string& s = row["step"];
      auto [ptr, err] = std::from_chars(s.data(), s.data() + s.size(), step);
      if (err != std::errc() || step > *through_step) continue;
    }
    std::vector<std::string> ordered;
    for (const auto& k : keys_) ordered.push_back(row.count(k) ? row[k] : std::string());
    out += csv_line(ordered);
  }
  if (header && !keys_.empty()) out += csv_line(keys_);
  write_file_atomic(path_, out);
  open_for_append();
}

void CsvMetrics::write_row(const Row& row) {
  bool wider = false;
  for (const auto& [key, value] : row)
    if (std::find(keys_.begin(), keys_.end(), key) == keys_.end()) {
      keys_.push_back(key);
      wider = true;
    }
  if (wider) {
    std::sort(keys_.begin(), keys_.end());  // Lightning sorts its header
    out_.flush();
    std::error_code ec;
    if (std::filesystem::file_size(path_, ec) > 0 && !ec) rewrite(std::nullopt);
    else out_ << csv_line(keys_);
  }
  std::vector<std::string> cells;
  for (const auto& k : keys_) {
    auto it = std::find_if(row.begin(), row.end(), [&](const auto& kv) { return kv.first == k; });
    cells.push_back(it == row.end() ? std::string() : it->second);
  }
  out_ << csv_line(cells);
}

void CsvMetrics::step(const LoggedStep& s) {
  if (s.discarded) return;
  Row row{{"step", std::to_string(s.step)}, {"train_seconds", csv_number(s.train_seconds)}};
  if (s.kind == "predicted") {
    row.emplace_back("forecast_loss", csv_number(s.loss));
    row.emplace_back("lr", csv_number(s.learning_rate));
  } else if (s.kind == "probe") {
    row.emplace_back("probe_loss", csv_number(s.loss));
  } else {
    row.emplace_back("loss", csv_number(s.loss));
    row.emplace_back("lr", csv_number(s.learning_rate));
    row.emplace_back("grad_norm", csv_number(s.grad_norm));
  }
  write_row(row);
}

void CsvMetrics::eval(std::int64_t step, double train_seconds, const Metrics& metrics,
                      std::optional<std::int64_t> predicted_steps) {
  Row row{{"step", std::to_string(step)}, {"train_seconds", csv_number(train_seconds)}};
  for (const auto& [name, value] : metrics) row.emplace_back(name, csv_number(value));
  if (predicted_steps && step > 0)
    row.emplace_back("predicted_fraction", csv_number(static_cast<double>(*predicted_steps) / static_cast<double>(step)));
  write_row(row);
  flush();
}

void CsvMetrics::resume(std::int64_t step) {
  out_.flush();
  rewrite(step);
}

void CsvMetrics::flush() {
  flush_or_throw(out_, path_);
}

}  // namespace hpt::host
