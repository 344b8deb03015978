// Finds plugin libraries, checks their descriptors and creates plugin objects that
// keep their library loaded for as long as they live.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"

namespace boost::dll {
class shared_library;
}

namespace hpt::host {

// One loaded plugin library and what its descriptor says.
struct PluginInfo {
  std::string path;
  PluginKind kind;
  std::string name;
  std::string version;
  std::string summary;
  std::string torch_version;
  std::vector<OptionSpec> options;
  const PluginDescriptor* descriptor = nullptr;
  std::shared_ptr<boost::dll::shared_library> library;
};

// The file name the loader looks for: hpt_<section>_<name>.so
std::string plugin_file_name(PluginKind kind, const std::string& name);

class PluginLoader {
 public:
  // Directories searched in order: the plugins beside the executable (build/plugins in
  // the build tree, P/lib/hpt/plugins once installed under prefix P), then
  // HPT_PLUGIN_PATH (colon-separated), then `extra_dirs` (run.plugin_dirs).
  explicit PluginLoader(std::vector<std::string> dirs);
  static std::vector<std::string> default_dirs(const std::vector<std::string>& extra_dirs);

  const std::vector<std::string>& dirs() const { return dirs_; }

  // Where warnings go (a library or directory writable by every user): stderr unless set.
  void on_warning(std::function<void(const std::string&)> warn) { warn_ = std::move(warn); }

  // Loads the library of plugin (kind, name) and checks its descriptor. Throws
  // hpt::BadInput when it is missing, ambiguous, mismatched or broken.
  std::shared_ptr<const PluginInfo> find(PluginKind kind, const std::string& name);

  // Every plugin library in the search path (for `hpt plugins`); libraries that fail
  // to load are reported in `problems` instead.
  std::vector<std::shared_ptr<const PluginInfo>> load_all(std::vector<std::string>* problems);

  // Creates a plugin object. The returned pointer keeps the library loaded.
  template <class Interface>
  std::shared_ptr<Interface> create(const PluginInfo& info, const PluginContext& context,
                                    const Options& options) {
    auto object = create_plugin(info, context, options);
    auto* typed = dynamic_cast<Interface*>(object.get());
    if (typed == nullptr)
      throw BadInput("plugin '" + info.name + "' (" + info.path + ") does not implement hpt::" +
                     interface_name(info.kind));
    return std::shared_ptr<Interface>(object, typed);
  }

 private:
  std::shared_ptr<Plugin> create_plugin(const PluginInfo& info, const PluginContext& context,
                                        const Options& options);
  std::shared_ptr<const PluginInfo> load_library(const std::string& path);
  std::vector<std::string> available(PluginKind kind) const;

  std::vector<std::string> dirs_;
  std::mutex mutex_;  // loading is serial
  std::vector<std::shared_ptr<const PluginInfo>> loaded_;
  std::function<void(const std::string&)> warn_;
};

}  // namespace hpt::host
