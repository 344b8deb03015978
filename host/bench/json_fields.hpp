// Fields of the JSON the bench reads back (metrics.jsonl lines, summary.json,
// results.json): a number or a string under a key, or what to use when it is missing
// (or null, as a diverged loss is).
#pragma once

#include <string>

#include <boost/json.hpp>

namespace hpt::host {

inline double json_number(const boost::json::object& o, const char* key, double fallback) {
  const auto* v = o.if_contains(key);
  return v && v->is_number() ? v->to_number<double>() : fallback;
}

inline std::string json_text(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

}  // namespace hpt::host
