#include "config/preset.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

#include <boost/dll/runtime_symbol_info.hpp>

#include "config/manifest.hpp"
#include "config/message_text.hpp"
#include "hpt/error.hpp"

namespace hpt::host {

namespace {

namespace fsys = std::filesystem;

const char* kPresetExtension = ".toml";

std::string position_in(const std::string& file, const toml::source_region& region) {
  return file + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

// Moves the keys of preset section `from` that `into` lacks (moved, not copied: a copied
// toml++ node forgets where it came from, and errors name the preset's file and line).
void add_missing_keys(toml::table& into, toml::table& from) {
  for (auto&& [key, node] : from)
    if (!into.contains(key.str())) node.visit([&, &k = key](auto&& n) { into.insert(k, std::move(n)); });
}

bool same_plugin(const toml::table& a, const toml::table& b) {
  const auto pa = a["plugin"].value<std::string>(), pb = b["plugin"].value<std::string>();
  return !pa || !pb || *pa == *pb;
}

}  // namespace

std::vector<std::string> preset_dirs() {
  std::vector<std::string> dirs;
  auto add = [&](const fsys::path& dir) {
    std::error_code ec;
    if (!fsys::is_directory(dir, ec)) return;
    std::string canonical = fsys::weakly_canonical(dir, ec).string();
    if (ec) canonical = dir.string();
    if (std::find(dirs.begin(), dirs.end(), canonical) == dirs.end()) dirs.push_back(canonical);
  };
  boost::dll::fs::error_code dll_ec;
  const fsys::path exe = boost::dll::program_location(dll_ec).string();
  if (!dll_ec) add(exe.parent_path() / HPT_INSTALLED_PRESETS_FROM_BIN);
  add(HPT_SOURCE_PRESET_DIR);
  return dirs;
}

std::vector<std::string> preset_names(const std::vector<std::string>& dirs) {
  std::set<std::string> names;
  for (const auto& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : fsys::directory_iterator(dir, ec))
      if (entry.path().extension() == kPresetExtension) names.insert(entry.path().stem().string());
  }
  return {names.begin(), names.end()};
}

std::string expand_preset(toml::table& manifest, const std::string& name, const std::string& where,
                          const std::vector<std::string>& dirs) {
  std::string file;
  if (name.find('/') == std::string::npos && name != "." && name != "..")
    for (const auto& dir : dirs) {
      std::error_code ec;
      const fsys::path candidate = fsys::path(dir) / (name + kPresetExtension);
      if (fsys::is_regular_file(candidate, ec)) {
        file = candidate.string();
        break;
      }
    }
  if (file.empty()) {
    const std::vector<std::string> known = preset_names(dirs);
    const std::string near = closest_name(name, known);
    throw BadInput(where + ": unknown preset '" + name + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                   " (known presets: " + (known.empty() ? "none" : join(known, ", ")) + "; searched " +
                   (dirs.empty() ? "no folder" : join(dirs, ", ")) + ")");
  }
  toml::table preset;
  try {
    preset = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    throw BadInput(position_in(file, e.source()) + ": TOML syntax error in preset '" + name + "': " +
                   std::string(e.description()));
  }
  for (const auto& [key, node] : preset) {
    const toml::table* from = node.as_table();
    if (from == nullptr)
      throw BadInput(position_in(file, node.source()) + ": preset '" + name + "' sets '" + std::string(key.str()) +
                     "' outside a section; a preset holds sections such as [dynamics], [correction], [phase]");
    if (key.str() == "run" && from->contains("preset"))
      throw BadInput(position_in(file, from->get("preset")->source()) + ": preset '" + name +
                     "' names another preset; presets do not nest");
  }
  for (auto&& [key, node] : preset) {
    toml::table& from = *node.as_table();
    toml::node* existing = manifest.get(key.str());
    if (existing == nullptr) {
      manifest.insert(key, std::move(from));
      continue;
    }
    toml::table* into = existing->as_table();
    if (into == nullptr || !same_plugin(*into, from)) continue;  // not a table: validation reports it
    add_missing_keys(*into, from);
  }
  return file;
}

}  // namespace hpt::host
