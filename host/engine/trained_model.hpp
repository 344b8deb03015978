// A trained model outside a run, for `hpt eval` and `hpt sample`: the task of a
// checkpoint or of a finished run directory, built from the manifest that run resolved
// (with command-line overrides), holding the weights it saved.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hpt/hpt.hpp"
#include "plugins/plugin_loader.hpp"

namespace hpt::host {

class TrainedModel {
 public:
  // `path` is either
  //   a checkpoint directory (runs/NAME/checkpoints/step_N, `latest`, `best`, or one `hpt
  //   average` wrote): its files are verified, then config.resolved.toml, model.pt and
  //   task.pt are used; or
  //   a run directory (runs/NAME) of a finished run: config.resolved.toml, final_weights.pt
  //   and final_task_state.pt.
  // `overrides` ("task.batch_size=64") apply to the resolved manifest. Only the backend
  // (for the device) and the task are created. With `inference_only` the task reads no
  // data and gets its saved state through load() before the weights are copied in (what
  // `hpt sample` needs); otherwise it is built as for training, and its saved state is
  // not loaded. With `averaged`, the weights are the run's [averaging] average instead: a
  // run directory's final_averaged_weights.pt, or a checkpoint's averaging.pt (its
  // parameters; the buffers from model.pt). Throws hpt::BadInput when `path` is neither,
  // or its files do not fit.
  TrainedModel(const std::string& path, const std::vector<std::string>& overrides, bool inference_only,
               bool averaged = false);
  ~TrainedModel();

  Task& task() { return *task_; }
  // The task's name, and the file the weights came from (absolute).
  const std::string& task_name() const { return task_name_; }
  const std::string& weights_file() const { return weights_file_; }

  // The task's metrics on its validation data: model in eval() mode, no autograd.
  Metrics evaluate();

  // The task's sample() (hpt::BadInput naming the task when it cannot sample).
  std::string sample(const SampleRequest& request);

 private:
  std::unique_ptr<PluginLoader> loader_;  // first in, last out: the plugins' libraries
  std::shared_ptr<Backend> backend_;
  std::shared_ptr<Task> task_;
  std::string task_name_;
  std::string weights_file_;
};

}  // namespace hpt::host
