// Plugin options: each plugin declares the keys it accepts in its manifest section
// (name, type, default, range, one-line doc). The host validates the section against
// that declaration, with positions in its errors, and hands the plugin an Options.
//
// What the host checks before a plugin sees a value: the type (an integer is accepted
// where a float is declared); min and max, inclusive, for numbers and for every element
// of number lists; floats are finite (TOML's inf and nan are refused whatever the range);
// strings and string lists are among `choices` when it is not empty. A Path is a string
// naming a file or folder: a relative one is resolved against the folder of the manifest
// that set it, so the plugin always sees an absolute path (or "" when left empty).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace hpt {

enum class OptionType { Bool, Int, Float, String, IntList, FloatList, StringList, Path };

// "bool", "integer", "float", "string", "list of integers", ..., "path"
const char* to_string(OptionType type);

// A Path's value is a std::string (read it with Options::get_string).
using OptionValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>,
                                 std::vector<double>, std::vector<std::string>>;

// The value as TOML would write it: true, 3, 0.006, "cnn", [16, 32, 32].
std::string to_toml(const OptionValue& value);

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::Float;
  OptionValue default_value;           // every option has a default
  std::string doc;                     // one line, shown by `hpt plugins`
  std::optional<double> min;           // for numbers and every element of number lists
  std::optional<double> max;
  std::vector<std::string> choices;    // for strings and string lists: the allowed values
};

// Declaration helpers, so a plugin's option list reads like a table.
OptionSpec option_bool(std::string name, bool def, std::string doc);
OptionSpec option_int(std::string name, std::int64_t def, std::string doc,
                      std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
OptionSpec option_float(std::string name, double def, std::string doc,
                        std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
OptionSpec option_string(std::string name, std::string def, std::string doc,
                         std::vector<std::string> choices = {});
// A file or folder; "" as the default means "not set". Relative to the manifest.
OptionSpec option_path(std::string name, std::string def, std::string doc);
OptionSpec option_int_list(std::string name, std::vector<std::int64_t> def, std::string doc,
                           std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
OptionSpec option_float_list(std::string name, std::vector<double> def, std::string doc,
                             std::optional<double> min = std::nullopt, std::optional<double> max = std::nullopt);
OptionSpec option_string_list(std::string name, std::vector<std::string> def, std::string doc,
                              std::vector<std::string> choices = {});

// Validated option values, one per declared option (defaults filled in).
// The getters throw hpt::BadInput naming the option when it is missing or of another type.
class Options {
 public:
  Options() = default;
  explicit Options(std::map<std::string, OptionValue> values);

  bool has(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  const std::vector<std::int64_t>& get_int_list(const std::string& name) const;
  const std::vector<double>& get_float_list(const std::string& name) const;
  const std::vector<std::string>& get_string_list(const std::string& name) const;

  void set(const std::string& name, OptionValue value);
  const std::map<std::string, OptionValue>& values() const { return values_; }

  // Every declared option with its default: what a plugin sees when its section is empty.
  static Options defaults(const std::vector<OptionSpec>& specs);

 private:
  const OptionValue& at(const std::string& name) const;
  std::map<std::string, OptionValue> values_;
};

}  // namespace hpt
