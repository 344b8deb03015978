#include "hpt/options.hpp"

#include <cstdio>
#include <sstream>
#include <string>

#include "hpt/error.hpp"

namespace hpt {

const char* to_string(OptionType type) {
  switch (type) {
    case OptionType::Bool: return "bool";
    case OptionType::Int: return "integer";
    case OptionType::Float: return "float";
    case OptionType::String: return "string";
    case OptionType::IntList: return "list of integers";
    case OptionType::FloatList: return "list of floats";
    case OptionType::StringList: return "list of strings";
    case OptionType::Path: return "path";
  }
  return "unknown";
}

namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04X", u);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The shortest text that reads back as exactly `v`.
std::string number(double v) {
  std::string s;
  for (int precision = 6; precision <= 17; ++precision) {
    std::ostringstream os;
    os.precision(precision);
    os << v;
    s = os.str();
    if (std::stod(s) == v) break;
  }
  // Keep it a TOML float.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

template <class T, class F>
std::string list(const std::vector<T>& values, F&& one) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + one(values[i]);
  return out + "]";
}

}  // namespace

std::string to_toml(const OptionValue& value) {
  struct Visitor {
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(std::int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return number(v); }
    std::string operator()(const std::string& v) const { return quote(v); }
    std::string operator()(const std::vector<std::int64_t>& v) const {
      return list(v, [](std::int64_t x) { return std::to_string(x); });
    }
    std::string operator()(const std::vector<double>& v) const { return list(v, number); }
    std::string operator()(const std::vector<std::string>& v) const { return list(v, quote); }
  };
  return std::visit(Visitor{}, value);
}

namespace {
OptionSpec make(std::string name, OptionType type, OptionValue def, std::string doc) {
  OptionSpec spec;
  spec.name = std::move(name);
  spec.type = type;
  spec.default_value = std::move(def);
  spec.doc = std::move(doc);
  return spec;
}
}  // namespace

OptionSpec option_bool(std::string name, bool def, std::string doc) {
  return make(std::move(name), OptionType::Bool, def, std::move(doc));
}
OptionSpec option_int(std::string name, std::int64_t def, std::string doc, std::optional<double> min,
                      std::optional<double> max) {
  auto s = make(std::move(name), OptionType::Int, def, std::move(doc));
  s.min = min;
  s.max = max;
  return s;
}
OptionSpec option_float(std::string name, double def, std::string doc, std::optional<double> min,
                        std::optional<double> max) {
  auto s = make(std::move(name), OptionType::Float, def, std::move(doc));
  s.min = min;
  s.max = max;
  return s;
}
OptionSpec option_string(std::string name, std::string def, std::string doc, std::vector<std::string> choices) {
  auto s = make(std::move(name), OptionType::String, std::move(def), std::move(doc));
  s.choices = std::move(choices);
  return s;
}
OptionSpec option_path(std::string name, std::string def, std::string doc) {
  return make(std::move(name), OptionType::Path, std::move(def), std::move(doc));
}
OptionSpec option_int_list(std::string name, std::vector<std::int64_t> def, std::string doc,
                           std::optional<double> min, std::optional<double> max) {
  auto s = make(std::move(name), OptionType::IntList, std::move(def), std::move(doc));
  s.min = min;
  s.max = max;
  return s;
}
OptionSpec option_float_list(std::string name, std::vector<double> def, std::string doc,
                             std::optional<double> min, std::optional<double> max) {
  auto s = make(std::move(name), OptionType::FloatList, std::move(def), std::move(doc));
  s.min = min;
  s.max = max;
  return s;
}
OptionSpec option_string_list(std::string name, std::vector<std::string> def, std::string doc,
                              std::vector<std::string> choices) {
  auto s = make(std::move(name), OptionType::StringList, std::move(def), std::move(doc));
  s.choices = std::move(choices);
  return s;
}

Options::Options(std::map<std::string, OptionValue> values) : values_(std::move(values)) {}

Options Options::defaults(const std::vector<OptionSpec>& specs) {
  std::map<std::string, OptionValue> values;
  for (const auto& spec : specs) values[spec.name] = spec.default_value;
  return Options(std::move(values));
}

bool Options::has(const std::string& name) const { return values_.count(name) != 0; }

void Options::set(const std::string& name, OptionValue value) { values_[name] = std::move(value); }

const OptionValue& Options::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw BadInput("option '" + name + "' is not set (is it declared by the plugin?)");
  return it->second;
}

namespace {
template <class T>
const T& get_as(const OptionValue& v, const std::string& name, const char* what) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw BadInput("option '" + name + "' holds " + to_toml(v) + ", not a " + what);
}
}  // namespace

bool Options::get_bool(const std::string& name) const { return get_as<bool>(at(name), name, "bool"); }
std::int64_t Options::get_int(const std::string& name) const {
  return get_as<std::int64_t>(at(name), name, "integer");
}
double Options::get_float(const std::string& name) const {
  const auto& v = at(name);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return get_as<double>(v, name, "float");
}
const std::string& Options::get_string(const std::string& name) const {
  return get_as<std::string>(at(name), name, "string");
}
const std::vector<std::int64_t>& Options::get_int_list(const std::string& name) const {
  return get_as<std::vector<std::int64_t>>(at(name), name, "list of integers");
}
const std::vector<double>& Options::get_float_list(const std::string& name) const {
  return get_as<std::vector<double>>(at(name), name, "list of floats");
}
const std::vector<std::string>& Options::get_string_list(const std::string& name) const {
  return get_as<std::vector<std::string>>(at(name), name, "list of strings");
}

}  // namespace hpt
