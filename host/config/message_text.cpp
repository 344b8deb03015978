#include "config/message_text.hpp"

#include <sstream>

namespace hpt::host {

std::string toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a bool";
    default: return "a date/time";
  }
}

std::string toml_value_text(const toml::node& node) {
  std::ostringstream os;
  node.visit([&](auto&& v) { os << toml::toml_formatter(v); });
  std::string s = os.str();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string toml_text(const toml::node& node) {
  std::ostringstream os;
  node.visit([&](auto&& v) {
    os << toml::toml_formatter(v, toml::toml_formatter::default_flags & ~toml::format_flags::allow_literal_strings);
  });
  return os.str();
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace hpt::host
