// The checker of the TOML files that drive many runs (the bench and tune manifests): it
// collects every problem of the file, each with file:line:column (or the override that set
// it) and its dotted key, so that one error lists them all, and the messages read alike in
// both: an unknown key names the closest valid one and every key the section accepts, a
// wrong value names what was expected and what was given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config/manifest.hpp"

namespace hpt::host {

class TableChecker {
 public:
  explicit TableChecker(const Manifest& m) : m_(m) {}

  // A problem at `at` (a node or a key), whose dotted path is `dotted`.
  template <class Node>
  void error(const Node& at, const std::string& dotted, const std::string& text) {
    errors_.push_back(m_.where(at.source(), dotted) + ": " + text);
  }
  // A problem of the whole file (a missing section).
  void error(const std::string& text);
  const std::vector<std::string>& errors() const { return errors_; }

  // Throws one hpt::BadInput listing every problem ("3 problems in the <what>:" first when
  // there are several); returns when there are none.
  void throw_if_any(const std::string& what) const;

  // Reports every key of `table` not in `allowed`, with the closest allowed name.
  // `prefix`: the table's dotted path ("bench"), so that a key set by an override is named as such.
  void known_keys(const toml::table& table, const std::string& section, const std::vector<std::string>& allowed,
                  const std::string& prefix);

  // table[key], or an error that shows the line to add ("[bench] needs 'seeds = [0, 1]'") and null.
  const toml::node* required(const toml::table& table, const std::string& section, const std::string& key,
                             const std::string& example);

  // The node's value, or an error naming what was expected and none.
  std::optional<std::string> string(const toml::node& node, const std::string& dotted);
  // A file or directory name: letters, digits, '_', '-', '.', not starting with '.'.
  std::optional<std::string> name(const toml::node& node, const std::string& dotted);
  // A string among `allowed`, with the closest one when it is not.
  std::optional<std::string> one_of(const toml::node& node, const std::string& dotted,
                                    const std::vector<std::string>& allowed);
  std::optional<std::int64_t> integer(const toml::node& node, const std::string& dotted, std::int64_t min);
  std::optional<bool> boolean(const toml::node& node, const std::string& dotted);

  // "'<dotted>' must be <expected>, got <type> <value>".
  void wrong(const toml::node& node, const std::string& dotted, const std::string& expected);

 private:
  const Manifest& m_;
  std::vector<std::string> errors_;
};

}  // namespace hpt::host
