// Presets: named partial manifests, one file per preset (configs/presets/<name>.toml in
// the source tree, <prefix>/share/hpt/presets/<name>.toml once installed), so one line
// ([run] preset = "hybrid_linear") turns on a whole setting, e.g. a hybrid's [dynamics],
// [correction] and [phase] sections with their options.
//
// Expansion, key by key: what the manifest (its overrides included) sets wins over the
// preset; a preset section whose plugin differs from the one the manifest names for that
// section adds nothing (its options belong to the other plugin); a section the manifest
// lacks comes whole from the preset.
#pragma once

#include <string>
#include <vector>

#include <toml++/toml.h>

namespace hpt::host {

// The folders searched for preset files, in order, those that exist: the installed one
// next to the executable (bin/../share/hpt/presets), then the source tree's
// configs/presets.
std::vector<std::string> preset_dirs();

// The names of the presets in `dirs` (file names without .toml), sorted, each once.
std::vector<std::string> preset_names(const std::vector<std::string>& dirs);

// Merges preset `name` into `manifest` by the rules above and returns the preset's file.
// `where` says where the manifest names the preset (for messages). Throws hpt::BadInput
// for an unknown name (listing the known ones), a preset file that is not valid TOML or
// holds keys outside sections, and a preset that names another preset.
std::string expand_preset(toml::table& manifest, const std::string& name, const std::string& where,
                          const std::vector<std::string>& dirs = preset_dirs());

}  // namespace hpt::host
