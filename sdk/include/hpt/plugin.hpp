// The plugin base type, the context the host hands to every plugin, and the one
// exported entry point each plugin library carries (see HPT_PLUGIN below).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>
#include <boost/dll/alias.hpp>
#include <torch/types.h>

#include "hpt/options.hpp"
#include "hpt/state_writer.hpp"
#include "hpt/version.hpp"

namespace spdlog {
class logger;
}

namespace hpt {

enum class PluginKind : std::int32_t {
  Task = 1,
  Optimizer = 2,
  DynamicsModel = 3,
  CorrectionStrategy = 4,
  PhaseController = 5,
  Backend = 6,
  Checkpointer = 7,
};

// "task", "optimizer", "dynamics", "correction", "phase", "backend", "checkpointer":
// the manifest section and the file-name part of each kind.
const char* section_name(PluginKind kind);
// "Task", "Optimizer", "DynamicsModel", ...: the interface name, for messages.
const char* interface_name(PluginKind kind);
// Every kind, in manifest order.
const std::vector<PluginKind>& all_plugin_kinds();

class Backend;

// What the host gives a plugin when it creates it. Valid for the plugin's lifetime.
struct PluginContext {
  std::shared_ptr<spdlog::logger> logger;  // the run's logger: console and hpt.log
  std::uint64_t seed = 0;                  // run.seed
  std::string run_dir;                     // runs/<name>; empty when not running
  std::int64_t max_steps = 0;              // run.max_steps: the budget in step-equivalents
  Backend* backend = nullptr;              // set for every kind created after the backend
  torch::Device device = torch::kCPU;      // the backend's device
  // Data parallelism: this process's rank among world_size. A task reads only its shard
  // of each global batch (batch_size rows of batch_size * world_size); everything else
  // is the same on every rank.
  int rank = 0;
  int world_size = 1;
  // Built for `hpt sample`: the task reads no data and builds its model in load(), from
  // the checkpoint's task state (char_lm: its vocabulary). Only the backend (for the
  // device) and the task are created.
  bool inference_only = false;
};

// Base of every plugin object. Plugins with state override save/load; the checkpointer
// stores what save() writes and gives it back to load() on resume (after bind(), where
// a kind has one). save() runs on the training thread between steps; what it writes is
// copied or serialised before training goes on (hpt/state_writer.hpp). load() reads
// with hpt::read_tensor / hpt::read_value (hpt/archive.hpp), which name a missing key.
//
// Lifetime and threading: the host creates a plugin with the descriptor's create(),
// uses it from one thread (the training thread) unless its kind's header says otherwise
// (Checkpointer::save, Backend), and destroys it before unloading its library. Every
// error is an exception: hpt::BadInput for bad options or files, hpt::RunError otherwise.
class Plugin {
 public:
  virtual ~Plugin();
  virtual void save(StateWriter& state) const;
  virtual void load(torch::serialize::InputArchive& archive);
};

using CreateFn = Plugin* (*)(const PluginContext& context, const Options& options, std::string& error) noexcept;
using OptionsFn = std::vector<OptionSpec> (*)();

// What the entry point returns. The first fields are plain C types so the host can
// check versions before it touches anything C++; the rest is valid only when they match.
struct PluginDescriptor {
  std::uint32_t sdk_abi_major;
  std::uint32_t sdk_abi_minor;
  const char* torch_version;  // LibTorch headers the plugin was compiled with, e.g. "1.13.0"
  std::int32_t cxx11_abi;     // _GLIBCXX_USE_CXX11_ABI of the plugin's build
  std::int32_t torch_cuda;    // HPT_TORCH_CUDA: 1 when built against a CUDA LibTorch
  std::int32_t kind;          // a PluginKind
  const char* name;           // the name a manifest uses: plugin = "adamw"
  const char* version;        // the plugin's own version
  const char* summary;        // one line
  OptionsFn options;          // the options it accepts
  CreateFn create;            // never throws: returns nullptr and fills `error`
};

// The one exported symbol of every plugin library: a Boost.DLL alias of a function
// returning the descriptor (load it with shared_library::get_alias<EntryFn-type>).
#define HPT_PLUGIN_ENTRY_SYMBOL "hpt_plugin_entry"
using EntryFn = const PluginDescriptor*();

namespace detail {
// Runs `make` and turns any exception into `error`, so none crosses the boundary.
template <class Make>
Plugin* create_guarded(Make&& make, std::string& error) noexcept {
  try {
    return make();
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  return nullptr;
}
}  // namespace detail

}  // namespace hpt

// Registers a plugin class. Use once per library, at namespace scope:
//
//   HPT_PLUGIN(hpt::PluginKind::Optimizer, "adamw", "1.0.0", "AdamW on torch::optim",
//              AdamWOptimizer, AdamWOptimizer::option_specs)
//
// CLASS must derive from the kind's interface and have a constructor
// CLASS(const hpt::PluginContext&, const hpt::Options&). OPTIONS_FN returns the
// std::vector<hpt::OptionSpec> the plugin accepts.
#define HPT_PLUGIN(KIND, NAME, VERSION, SUMMARY, CLASS, OPTIONS_FN)                              \
  namespace hpt_plugin_registration {                                                           \
  const ::hpt::PluginDescriptor* entry() {                                                      \
    static const ::hpt::PluginDescriptor descriptor = {                                         \
        HPT_SDK_ABI_MAJOR,                                                                      \
        HPT_SDK_ABI_MINOR,                                                                      \
        HPT_TORCH_VERSION_STRING,                                                               \
        HPT_CXX11_ABI,                                                                          \
        HPT_TORCH_CUDA,                                                                         \
        static_cast<std::int32_t>(KIND),                                                        \
        NAME,                                                                                   \
        VERSION,                                                                                \
        SUMMARY,                                                                                \
        +[]() -> std::vector<::hpt::OptionSpec> { return OPTIONS_FN(); },                       \
        +[](const ::hpt::PluginContext& context, const ::hpt::Options& options,                 \
            std::string& error) noexcept -> ::hpt::Plugin* {                                    \
          return ::hpt::detail::create_guarded(                                                 \
              [&]() -> ::hpt::Plugin* { return new CLASS(context, options); }, error);          \
        },                                                                                      \
    };                                                                                          \
    return &descriptor;                                                                         \
  }                                                                                             \
  }                                                                                             \
  BOOST_DLL_ALIAS(hpt_plugin_registration::entry, hpt_plugin_entry)
