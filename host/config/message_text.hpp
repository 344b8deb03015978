// Text helpers for error messages, shared by the plugin loader and the run and bench
// manifest validators so all of them speak the same way.
#pragma once

#include <string>
#include <vector>

#include <toml++/toml.h>

namespace hpt::host {

// "a table", "an array", "a string", "an integer", "a float", "a bool", "a date/time".
std::string toml_type_name(const toml::node& node);

// The node as TOML text, e.g. "linear" or [16, 32], cut to 60 characters.
std::string toml_value_text(const toml::node& node);

// The node as TOML text in full, strings in double quotes ("linear", never 'linear'): in
// messages of the bench and tune manifests, and in the overrides they write for a run.
std::string toml_text(const toml::node& node);

// items joined with sep.
std::string join(const std::vector<std::string>& items, const std::string& sep);

}  // namespace hpt::host
