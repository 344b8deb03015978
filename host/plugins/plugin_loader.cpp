#include "plugins/plugin_loader.hpp"

#include <boost/algorithm/string/join.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

const std::string kPrefix = "hpt_";
const std::string kSuffix = ".so";

// "hpt_optimizer_adamw.so" -> (optimizer, "adamw")
bool parse_file_name(const std::string& file, PluginKind& kind, std::string& name) {
  if (file.size() <= kPrefix.size() + kSuffix.size() || file.rfind(kPrefix, 0) != 0 ||
      file.compare(file.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return false;
  std::string rest = file.substr(kPrefix.size(), file.size() - kPrefix.size() - kSuffix.size());
  for (PluginKind k : all_plugin_kinds()) {
    std::string section = std::string(section_name(k)) + "_";
    if (rest.rfind(section, 0) == 0 && rest.size() > section.size()) {
      kind = k;
      name = rest.substr(section.size());
      return true;
    }
  }
  return false;
}

std::string abi_text(int abi) { return abi < 0 ? "unset" : std::to_string(abi); }

std::string flavour_text(int torch_cuda) { return torch_cuda == 1 ? "CUDA" : torch_cuda == 0 ? "CPU-only" : "unknown"; }

// Why `path` cannot be a shared library ("" when it may be): dlopen's own words for an
// empty or foreign file ("file too short", "invalid ELF header", or worse) say little.
std::string not_a_library(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";  // dlopen will say why it cannot open it
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 0) return "it is empty, not a shared library";
  if (in.gcount() < 4 || std::memcmp(magic, "\x7f" "ELF", 4) != 0) return "it is not a shared library (no ELF header)";
  return "";
}

// Anyone may replace a library in a world-writable place: hpt would run their code.
std::string world_writable(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IWOTH))
    return "plugin library " + path + " is writable by every user: anyone could replace the code hpt runs (chmod o-w)";
  std::string dir = fs::path(path).parent_path().string();
  if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    return "plugin directory " + dir + " is writable by every user: anyone could replace the code hpt runs (chmod o-w)";
  return "";
}

}  // namespace

std::string plugin_file_name(PluginKind kind, const std::string& name) {
  return kPrefix + section_name(kind) + "_" + name + kSuffix;
}

PluginLoader::PluginLoader(std::vector<std::string> dirs)
    : dirs_(std::move(dirs)), warn_([](const std::string& text) { std::cerr << "hpt: warning: " << text << "\n"; }) {}

std::vector<std::string> PluginLoader::default_dirs(const std::vector<std::string>& extra_dirs) {
  std::vector<std::string> dirs;
  auto add = [&](const std::string& d) {
    if (d.empty()) return;
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(d, ec).string();
    if (ec) canonical = d;
    if (std::find(dirs.begin(), dirs.end(), canonical) == dirs.end()) dirs.push_back(canonical);
  };
  // Next to the executable: build/bin/hpt -> build/plugins in the build tree;
  // P/bin/hpt -> P/lib/hpt/plugins once installed (HPT_INSTALLED_PLUGINS_FROM_BIN, set by
  // host/CMakeLists.txt from the install layout). Only folders that exist are searched.
  boost::dll::fs::error_code dll_ec;
  fs::path exe = boost::dll::program_location(dll_ec).string();
  if (!dll_ec) {
    std::error_code ec;
    const fs::path build_tree = exe.parent_path().parent_path() / "plugins";
    const fs::path installed = exe.parent_path() / HPT_INSTALLED_PLUGINS_FROM_BIN;
    if (fs::is_directory(build_tree, ec) || !fs::is_directory(installed, ec)) add(build_tree.string());
    if (fs::is_directory(installed, ec)) add(installed.string());
  }
  if (const char* env = std::getenv("HPT_PLUGIN_PATH")) {
    std::string s = env;
    std::size_t start = 0;
    while (start <= s.size()) {
      std::size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      add(s.substr(start, end - start));
      start = end + 1;
    }
  }
  for (const auto& d : extra_dirs) add(d);
  return dirs;
}

std::vector<std::string> PluginLoader::available(PluginKind kind) const {
  std::vector<std::string> names;
  for (const auto& dir : dirs_) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      PluginKind k;
      std::string name;
      if (parse_file_name(entry.path().filename().string(), k, name) && k == kind &&
          std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::shared_ptr<const PluginInfo> PluginLoader::load_library(const std::string& path) {
  for (const auto& info : loaded_)
    if (info->path == path) return info;

  if (std::string why = not_a_library(path); !why.empty())
    throw BadInput("cannot load plugin library " + path + ": " + why);
  if (std::string why = world_writable(path); !why.empty()) warn_(why);
  auto library = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code ec;
  library->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    // dlerror() says which symbol or dependency is missing.
    throw BadInput("cannot load plugin library " + path + ": " + ec.message());
  }
  if (!library->has(HPT_PLUGIN_ENTRY_SYMBOL))
    throw BadInput("plugin library " + path + " has no entry point '" + HPT_PLUGIN_ENTRY_SYMBOL +
                   "': it was not built with HPT_PLUGIN(...) (see docs/writing-plugins.md)");
  const PluginDescriptor* d = library->get_alias<EntryFn>(HPT_PLUGIN_ENTRY_SYMBOL)();
  if (d == nullptr) throw BadInput("plugin library " + path + ": its entry point returned no descriptor");

  const std::string host_torch = HPT_TORCH_VERSION_STRING;
  const std::string plugin_torch = d->torch_version ? d->torch_version : "(none)";
  if (d->sdk_abi_major != HPT_SDK_ABI_MAJOR)
    throw BadInput("plugin library " + path + " was built for hpt SDK ABI " + std::to_string(d->sdk_abi_major) +
                   "." + std::to_string(d->sdk_abi_minor) + ", this hpt has SDK ABI " +
                   std::to_string(HPT_SDK_ABI_MAJOR) + "." + std::to_string(HPT_SDK_ABI_MINOR) +
                   " (the major versions must match): rebuild the plugin against this SDK");
  if (d->sdk_abi_minor > HPT_SDK_ABI_MINOR)
    throw BadInput("plugin library " + path + " needs hpt SDK ABI " + std::to_string(d->sdk_abi_major) + "." +
                   std::to_string(d->sdk_abi_minor) + ", newer than this hpt's " +
                   std::to_string(HPT_SDK_ABI_MAJOR) + "." + std::to_string(HPT_SDK_ABI_MINOR) +
                   ": upgrade hpt or rebuild the plugin against this SDK");
  if (plugin_torch != host_torch)
    throw BadInput("plugin library " + path + " was built with LibTorch " + plugin_torch +
                   ", this hpt runs LibTorch " + host_torch + ": rebuild the plugin against this LibTorch");
  if (d->cxx11_abi != HPT_CXX11_ABI)
    throw BadInput("plugin library " + path + " was built with _GLIBCXX_USE_CXX11_ABI=" + abi_text(d->cxx11_abi) +
                   ", this hpt with _GLIBCXX_USE_CXX11_ABI=" + abi_text(HPT_CXX11_ABI) +
                   ": rebuild the plugin with the same C++ ABI");
  if (d->torch_cuda != HPT_TORCH_CUDA)
    throw BadInput("plugin library " + path + " was built against a " + flavour_text(d->torch_cuda) +
                   " LibTorch " + plugin_torch + ", this hpt against a " + flavour_text(HPT_TORCH_CUDA) +
                   " LibTorch " + host_torch + ": rebuild the plugin against the LibTorch this hpt uses");
  bool known_kind = false;
  for (PluginKind k : all_plugin_kinds()) known_kind = known_kind || static_cast<std::int32_t>(k) == d->kind;
  if (!known_kind || d->name == nullptr || d->create == nullptr || d->options == nullptr)
    throw BadInput("plugin library " + path + " has an invalid descriptor (kind " + std::to_string(d->kind) + ")");

  auto info = std::make_shared<PluginInfo>();
  info->path = path;
  info->kind = static_cast<PluginKind>(d->kind);
  info->name = d->name;
  info->version = d->version ? d->version : "";
  info->summary = d->summary ? d->summary : "";
  info->torch_version = plugin_torch;
  info->options = d->options();
  info->descriptor = d;
  info->library = std::move(library);
  loaded_.push_back(info);
  return info;
}

std::shared_ptr<const PluginInfo> PluginLoader::find(PluginKind kind, const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string file = plugin_file_name(kind, name);
  std::vector<std::string> hits;
  for (const auto& dir : dirs_) {
    fs::path p = fs::path(dir) / file;
    std::error_code ec;
    if (fs::exists(p, ec)) hits.push_back(p.string());
  }
  if (hits.empty()) {
    // Is it a plugin of another kind?
    for (PluginKind other : all_plugin_kinds()) {
      if (other == kind) continue;
      for (const auto& dir : dirs_) {
        std::error_code ec;
        if (fs::exists(fs::path(dir) / plugin_file_name(other, name), ec))
          throw BadInput("plugin '" + name + "' is a " + interface_name(other) + " (found " +
                         (fs::path(dir) / plugin_file_name(other, name)).string() + "), but [" +
                         section_name(kind) + "] needs a " + interface_name(kind) + "; " +
                         interface_name(kind) + " plugins here: " + boost::algorithm::join(available(kind), ", "));
      }
    }
    auto names = available(kind);
    throw BadInput("no " + std::string(interface_name(kind)) + " plugin named '" + name + "' (looked for " + file +
                   " in: " + boost::algorithm::join(dirs_, ", ") + "); available " + section_name(kind) + " plugins: " +
                   (names.empty() ? std::string("none") : boost::algorithm::join(names, ", ")) +
                   ". Add a directory with HPT_PLUGIN_PATH or run.plugin_dirs.");
  }
  if (hits.size() > 1)
    throw BadInput("two libraries offer " + std::string(section_name(kind)) + " plugin '" + name +
                   "': " + boost::algorithm::join(hits, " and ") + "; remove one or take its directory out of the search path");
  auto info = load_library(hits.front());
  if (info->kind != kind || info->name != name)
    throw BadInput("plugin library " + hits.front() + " says it is " + section_name(info->kind) + " plugin '" +
                   info->name + "', but its file name says " + section_name(kind) + " plugin '" + name + "'");
  return info;
}

std::vector<std::shared_ptr<const PluginInfo>> PluginLoader::load_all(std::vector<std::string>* problems) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::shared_ptr<const PluginInfo>> out;
  std::map<std::string, std::string> seen;  // "kind/name" -> path
  for (const auto& dir : dirs_) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      PluginKind kind;
      std::string name;
      if (!parse_file_name(path.filename().string(), kind, name)) continue;
      std::string key = std::string(section_name(kind)) + "/" + name;
      if (seen.count(key)) {
        if (problems) problems->push_back("two libraries offer " + key + ": " + seen[key] + " and " + path.string());
        continue;
      }
      seen[key] = path.string();
      try {
        auto info = load_library(path.string());
        if (info->kind != kind || info->name != name) {
          if (problems)
            problems->push_back("plugin library " + path.string() + " says it is " + section_name(info->kind) +
                                " plugin '" + info->name + "', but its file name says " + section_name(kind) +
                                " plugin '" + name + "'; it is not listed (hpt would refuse to load it)");
          continue;
        }
        out.push_back(info);
      } catch (const std::exception& e) {
        if (problems) problems->push_back(e.what());
      }
    }
  }
  return out;
}

std::shared_ptr<Plugin> PluginLoader::create_plugin(const PluginInfo& info, const PluginContext& context,
                                                    const Options& options) {
  std::string error;
  Plugin* raw = info.descriptor->create(context, options, error);
  if (raw == nullptr)
    throw BadInput("plugin " + std::string(section_name(info.kind)) + " '" + info.name + "' (" + info.path +
                   ") failed to start: " + (error.empty() ? "no reason given" : error));
  // The object is deleted before the library it came from is released.
  struct Holder {
    std::shared_ptr<boost::dll::shared_library> library;
    std::unique_ptr<Plugin> object;
  };
  auto holder = std::make_shared<Holder>();
  holder->library = info.library;
  holder->object.reset(raw);
  return std::shared_ptr<Plugin>(holder, raw);
}

}  // namespace hpt::host
