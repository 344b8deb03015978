#include "engine/trained_model.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "checkpoint/archive_io.hpp"
#include "checkpoint/checkpoint_tools.hpp"
#include "checkpoint/weights_file.hpp"
#include "checkpoint_format/checkpoint_manifest.hpp"
#include "config/manifest.hpp"
#include "engine/weight_average.hpp"
#include "output/run_directory.hpp"

namespace hpt::host {

namespace fs = std::filesystem;

namespace {

// What a checkpoint or a run directory holds for a trained model.
struct SavedRun {
  Manifest manifest;
  std::string weights_name;  // where the weights come from, for messages
  std::string weights;       // a module archive (model.pt, final_weights.pt)
  std::string task_state;    // the task's save() archive, "" when there is none
  NamedTensors averaged;     // averaged: the averaged parameters of a checkpoint's averaging.pt
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadInput("cannot read " + path.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

SavedRun saved_run(const std::string& given, const std::vector<std::string>& overrides, bool need_task_state,
                   bool averaged) {
  const fs::path dir = fs::absolute(given).lexically_normal();
  const char* const kExpected =
      "give a checkpoint directory (runs/NAME/checkpoints/step_N, or its `latest` or `best` link) or the run "
      "directory of a finished run (runs/NAME, with final_weights.pt)";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw BadInput(dir.string() + (fs::exists(dir, ec) ? " is not a directory: " : " does not exist: ") + kExpected);
  SavedRun saved;
  if (fs::exists(dir / checkpoint::kManifestName, ec)) {
    checkpoint::VerifiedCheckpoint c = checkpoint::read_checkpoint(dir.string());
    auto file = [&](const std::string& name) -> const std::string* {
      for (const auto& f : c.files)
        if (f.name == name) return &f.bytes;
      return nullptr;
    };
    const std::string* config = file("config.resolved.toml");
    const std::string* model = file("model.pt");
    if (!config || !model)
      throw BadInput("checkpoint " + dir.string() + " has no " + (config ? "model.pt" : "config.resolved.toml") +
                     " (not written by hpt's torch checkpointer?)");
    saved.manifest = Manifest::parse(*config, (dir / "config.resolved.toml").string(), overrides);
    saved.weights_name = (dir / "model.pt").string();
    saved.weights = *model;
    if (const std::string* task = file("task.pt")) saved.task_state = *task;
    if (averaged) {
      // The checkpoint's averaged parameters, over model.pt (whose buffers they leave as they are).
      const std::string* averaging = file("averaging.pt");
      const std::string what = (dir / "averaging.pt").string();
      if (averaging) saved.averaged = read_averaged_weights(*averaging, what);
      if (!averaging || saved.averaged.empty())
        throw BadInput("checkpoint " + dir.string() + (averaging ? " was written before its weight average started"
                                                                 : " has no averaging.pt (its run had no [averaging] section)"));
      saved.weights_name = what;
    }
    return saved;
  }
  if (!fs::exists(dir / "config.resolved.toml", ec))
    throw BadInput(dir.string() + " is neither a checkpoint directory (no " + checkpoint::kManifestName +
                   ") nor a run directory (no config.resolved.toml): " + kExpected);
  const fs::path weights = dir / (averaged ? "final_averaged_weights.pt" : "final_weights.pt");
  if (averaged && fs::exists(dir / "final_weights.pt", ec) && !fs::exists(weights, ec))
    throw BadInput("run directory " + dir.string() +
                   " has no final_averaged_weights.pt (its run had no [averaging] section, or ended before the "
                   "average started)");
  if (!fs::exists(weights, ec))
    throw BadInput("run directory " + dir.string() + " has no " + weights.filename().string() +
                   " (the run has not finished): give one of its checkpoints, e.g. " +
                   (dir / "checkpoints" / "latest").string());
  saved.manifest = Manifest::load((dir / "config.resolved.toml").string(), overrides);
  saved.weights_name = weights.string();
  saved.weights = read_bytes(weights);
  const fs::path task_state = dir / "final_task_state.pt";
  if (fs::exists(task_state, ec)) saved.task_state = read_bytes(task_state);
  else if (need_task_state)
    throw BadInput("run directory " + dir.string() +
                   " has no final_task_state.pt (written by runs of newer hpt versions): give one of its checkpoints");
  return saved;
}

}  // namespace

TrainedModel::TrainedModel(const std::string& path, const std::vector<std::string>& overrides, bool inference_only,
                           bool averaged) {
  SavedRun saved = saved_run(path, overrides, inference_only, averaged);
  loader_ = std::make_unique<PluginLoader>(PluginLoader::default_dirs(plugin_dirs_of(saved.manifest)));
  ResolvedManifest manifest = resolve(saved.manifest, *loader_);
  const PluginChoice& backend = manifest.at(PluginKind::Backend);
  const PluginChoice& task = manifest.at(PluginKind::Task);
  task_name_ = task.info->name;

  PluginContext context;
  context.logger = make_run_logger("", "warn");
  context.seed = static_cast<std::uint64_t>(manifest.run.seed);
  context.max_steps = manifest.run.max_steps;
  context.inference_only = inference_only;
  backend_ = loader_->create<Backend>(*backend.info, context, backend.options);
  context.backend = backend_.get();
  context.device = backend_->device();
  task_ = loader_->create<Task>(*task.info, context, task.options);
  if (inference_only) {
    if (saved.task_state.empty())
      throw BadInput(saved.weights_name + ": its checkpoint has no task.pt, the task state sampling needs");
    if (!task_->can_sample())
      throw BadInput("task '" + task_name_ + "' does not generate samples (tasks that model sequences, such as "
                     "char_lm, do)");
    read_archive(saved.task_state, [&](torch::serialize::InputArchive& archive) { task_->load(archive); });
  }
  weights_file_ = saved.weights_name;
  NamedTensors weights = read_model_tensors(saved.weights, weights_file_);
  for (auto& [name, tensor] : weights)
    for (const auto& [averaged_name, value] : saved.averaged)
      if (averaged_name == name) tensor = value;
  copy_weights_into(task_->model(), weights, weights_file_);
}

TrainedModel::~TrainedModel() = default;

Metrics TrainedModel::evaluate() {
  torch::NoGradGuard no_grad;
  task_->model().eval();
  Metrics metrics = task_->evaluate();
  task_->model().train();
  return metrics;
}

std::string TrainedModel::sample(const SampleRequest& request) {
  torch::NoGradGuard no_grad;
  task_->model().eval();
  return task_->sample(request);
}

}  // namespace hpt::host
