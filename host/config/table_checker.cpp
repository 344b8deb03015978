#include "config/table_checker.hpp"

#include <algorithm>
#include <cctype>

#include "config/message_text.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {

bool usable_as_directory_name(const std::string& s) {
  if (s.empty() || s.front() == '.') return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
  });
}

}  // namespace

void TableChecker::error(const std::string& text) { errors_.push_back(m_.path() + ": " + text); }

void TableChecker::throw_if_any(const std::string& what) const {
  if (errors_.empty()) return;
  std::string head = errors_.size() == 1 ? "" : std::to_string(errors_.size()) + " problems in the " + what + ":\n  ";
  throw BadInput(head + join(errors_, "\n  "));
}

void TableChecker::known_keys(const toml::table& table, const std::string& section,
                              const std::vector<std::string>& allowed, const std::string& prefix) {
  for (const auto& [key, node] : table) {
    std::string k(key.str());
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    std::string near = closest_name(k, allowed);
    error(key, prefix.empty() ? k : prefix + "." + k,
          "unknown key '" + k + "' in " + section + (near.empty() ? "" : "; did you mean '" + near + "'?") + " (" +
              section + " accepts: " + join(allowed, ", ") + ")");
  }
}

const toml::node* TableChecker::required(const toml::table& table, const std::string& section,
                                         const std::string& key, const std::string& example) {
  const toml::node* node = table.get(key);
  if (node == nullptr) error(table, section, section + " needs '" + key + " = " + example + "'");
  return node;
}

std::optional<std::string> TableChecker::string(const toml::node& node, const std::string& dotted) {
  if (auto v = node.value_exact<std::string>()) return *v;
  wrong(node, dotted, "a string");
  return std::nullopt;
}

std::optional<std::string> TableChecker::name(const toml::node& node, const std::string& dotted) {
  auto v = string(node, dotted);
  if (v && !usable_as_directory_name(*v)) {
    error(node, dotted, "'" + dotted + "' must be a name made of letters, digits, '_', '-' and '.' (not starting with '.'), got " + toml_text(node));
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> TableChecker::one_of(const toml::node& node, const std::string& dotted,
                                                const std::vector<std::string>& allowed) {
  auto v = string(node, dotted);
  if (!v) return v;
  if (std::find(allowed.begin(), allowed.end(), *v) != allowed.end()) return v;
  std::string near = closest_name(*v, allowed);
  error(node, dotted, "'" + dotted + "' must be one of " + join(allowed, ", ") + ", got " + toml_text(node) +
                          (near.empty() ? "" : "; did you mean \"" + near + "\"?"));
  return std::nullopt;
}

std::optional<std::int64_t> TableChecker::integer(const toml::node& node, const std::string& dotted, std::int64_t min) {
  auto v = node.value_exact<std::int64_t>();
  if (!v || *v < min) {
    wrong(node, dotted, "an integer >= " + std::to_string(min));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> TableChecker::boolean(const toml::node& node, const std::string& dotted) {
  if (auto v = node.value_exact<bool>()) return *v;
  wrong(node, dotted, "true or false");
  return std::nullopt;
}

void TableChecker::wrong(const toml::node& node, const std::string& dotted, const std::string& expected) {
  error(node, dotted, "'" + dotted + "' must be " + expected + ", got " + toml_type_name(node) + " " + toml_text(node));
}

}  // namespace hpt::host
