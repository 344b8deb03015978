#include "output/run_summary.hpp"

#include <sys/resource.h>

#include <torch/utils.h>

namespace hpt::host {

namespace {

// The process's peak resident set size so far, in bytes (-1 if the system cannot tell).
std::int64_t peak_resident_bytes() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0 || usage.ru_maxrss <= 0) return -1;
  return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace

boost::json::object RunSummary::to_json() const {
  boost::json::object o;
  o["status"] = status;
  if (!error.empty()) o["error"] = error;
  o["run_dir"] = run_dir;
  o["steps"] = steps;
  o["real_steps"] = real_steps;
  o["predicted_steps"] = predicted_steps;
  o["predicted_discarded"] = predicted_discarded;
  o["predicted_fraction"] = steps > 0 ? static_cast<double>(predicted_steps) / static_cast<double>(steps) : 0.0;
  o["probes"] = probes;
  o["rollbacks"] = rollbacks;
  o["divergence_rollbacks"] = divergence_rollbacks;
  o["forward_passes"] = forward_passes;
  o["backward_passes"] = backward_passes;
  o["skipped_steps"] = skipped_steps;
  o["world_size"] = world_size;
  o["allreduce_bytes"] = allreduce_bytes;
  o["allreduce_wait_seconds"] = allreduce_wait_seconds;
  o["train_seconds"] = train_seconds;
  o["eval_seconds"] = eval_seconds;
  o["checkpoint_seconds"] = checkpoint_seconds;
  o["checkpoint_stall_seconds"] = checkpoint_stall_seconds;
  o["evaluations"] = evaluations;
  auto opt = [](const auto& v) -> boost::json::value {
    if (v) return boost::json::value(*v);
    return nullptr;
  };
  o["seconds_to_target"] = opt(seconds_to_target);
  o["steps_to_target"] = opt(steps_to_target);
  o["backward_passes_to_target"] = opt(backward_passes_to_target);
  boost::json::object m;
  for (const auto& [k, v] : final_metrics) m[k] = v;
  o["final_metrics"] = m;
  if (memory.allocated >= 0 || memory.total >= 0) {
    boost::json::object mem;
    auto bytes = [](std::int64_t b) -> boost::json::value {
      if (b >= 0) return b;
      return nullptr;
    };
    mem["allocated_bytes"] = bytes(memory.allocated);
    mem["peak_bytes"] = bytes(memory.peak);
    mem["total_bytes"] = bytes(memory.total);
    o["memory"] = mem;
  }
  return o;
}

std::string summary_document(const RunSummary& summary, const ResolvedManifest& manifest) {
  boost::json::object o = summary.to_json();
  o["name"] = manifest.run.name;
  o["seed"] = manifest.run.seed;
  o["max_steps"] = manifest.run.max_steps;
  o["hpt_version"] = HPT_VERSION_STRING;
  o["torch_version"] = HPT_TORCH_VERSION_STRING;
  o["torch_cuda"] = HPT_TORCH_CUDA == 1;
  const Options& backend = manifest.at(PluginKind::Backend).options;
  o["precision"] = backend.has("precision") ? backend.get_string("precision") : "fp32";
  o["torch_threads"] = torch::get_num_threads();
  // The run's peak memory: the device allocator's peak where the backend tells it (CUDA),
  // else the process's peak resident set (LibTorch's CPU allocator keeps no statistics).
  if (summary.memory.peak >= 0) {
    o["peak_memory_bytes"] = summary.memory.peak;
    o["peak_memory_of"] = "device allocator";
  } else if (const std::int64_t rss = peak_resident_bytes(); rss >= 0) {
    o["peak_memory_bytes"] = rss;
    o["peak_memory_of"] = "process resident set";
  }
  boost::json::object plugins;
  for (const auto& [kind, c] : manifest.plugins) plugins[section_name(kind)] = c.info->name + " " + c.info->version;
  o["plugins"] = plugins;
  return boost::json::serialize(o) + "\n";
}

}  // namespace hpt::host
