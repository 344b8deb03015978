// Task "torchscript": trains a user's TorchScript module (torch::jit::save / Python's
// torch.jit.save) on the samples of a data file (tensor_file.hpp for its layouts).
//
// The model is the script module wrapped as a torch::nn::Module (script_model.hpp),
// starting from the weights its file holds, its parameters named as in PyTorch. The
// validation rows are those of `val_data_path` when it is set; otherwise `val_fraction`
// of the rows of `data_path` are held out: after a shuffle seeded by the run seed (as
// torch.utils.data.random_split), or, with shuffle = false, the last rows of the file.
// The training rows are visited in batches shuffled per epoch
// (task_support/epoch_sampler.hpp). Loss: mse (targets converted to the outputs'
// floating type) or cross_entropy (outputs [N, classes], targets class indices,
// converted to int64). The probe batch is a fixed random choice of training rows.
// Metrics: val_loss, and val_accuracy for cross_entropy.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>

#include "task_support/epoch_sampler.hpp"
#include "hpt/hpt.hpp"
#include "hpt/torch_compat.hpp"
#include "task_support/losses.hpp"
#include "script_model.hpp"
#include "task_support/seeding.hpp"
#include "tensor_file.hpp"

namespace {

using hpt::task_support::derive_seed;
using hpt::task_support::LossKind;

// Independent random streams of one run.
enum Stream : std::uint64_t { kOrderStream = 1, kProbeStream = 2, kSplitStream = 3 };

constexpr std::int64_t kEvalChunk = 4096;

torch::jit::Module load_script_module(const std::string& path, torch::Device device) {
  if (path.empty()) throw hpt::BadInput("task torchscript: set `module_path` to a TorchScript module file");
  if (!std::filesystem::exists(path)) throw hpt::BadInput("TorchScript module " + path + " does not exist");
  try {
    return torch::jit::load(path, device);
  } catch (const std::exception& e) {
    throw hpt::BadInput("cannot load TorchScript module " + path + ": " + e.what());
  }
}

class TorchScriptTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_path("module_path", "", "TorchScript module to train (torch::jit::save / torch.jit.save)"),
        hpt::option_path("data_path", "",
                         "training data: {\"inputs\": X, \"targets\": Y}, {\"x\": X, \"y\": Y} or a pair (X, Y), "
                         "saved with torch.save / torch::pickle_save"),
        hpt::option_path("val_data_path", "",
                         "validation data in the same layouts (empty: hold out val_fraction of data_path)"),
        hpt::option_string("loss", "mse", "mse or cross_entropy (targets: class indices)", {"mse", "cross_entropy"}),
        hpt::option_int("batch_size", 32, "rows per batch", 1, 10000000),
        hpt::option_float("val_fraction", 0.2,
                          "fraction of data_path's rows held out for validation (not used with val_data_path)", 0.0,
                          0.9),
        hpt::option_bool("shuffle", true,
                         "shuffle data_path's rows with the run seed before holding out val_fraction (false: the "
                         "last rows of the file are held out)"),
        hpt::option_bool("data_on_device", true,
                         "keep the whole data set on the backend's device (false: in host memory, pinned when "
                         "the device is a GPU, each batch gathered there and copied asynchronously)"),
    };
  }

  TorchScriptTask(const hpt::PluginContext& context, const hpt::Options& options)
      : loss_kind_(hpt::task_support::loss_kind_from_name(options.get_string("loss"))),
        model_(load_script_module(options.get_string("module_path"), context.device)),
        device_(context.device),
        data_device_(options.get_bool("data_on_device") ? context.device : torch::Device(torch::kCPU)) {
    const std::string& data_path = options.get_string("data_path");
    if (data_path.empty()) throw hpt::BadInput("task torchscript: set `data_path` to a data file");
    hpt::torchscript::TensorData data = hpt::torchscript::read_tensor_file(data_path);
    const std::string& val_path = options.get_string("val_data_path");
    hpt::torchscript::TensorData val;
    if (!val_path.empty()) {
      val = hpt::torchscript::read_tensor_file(val_path);
      check_same_row_shapes(data, data_path, val, val_path);
    } else {
      val = hold_out(data, data_path, options.get_float("val_fraction"),
                     options.get_bool("shuffle") ? std::optional<std::uint64_t>(derive_seed(context.seed, kSplitStream))
                                                 : std::nullopt);
    }
    train_inputs_ = data.inputs.to(data_device_);
    train_targets_ = targets_for_loss(data.targets.to(data_device_));
    val_inputs_ = val.inputs.to(data_device_);
    val_targets_ = targets_for_loss(val.targets.to(data_device_));
    // The checks below run the module in eval() mode: a single row passes BatchNorm there, and
    // its running statistics do not move before training starts.
    model_->eval();
    if (loss_kind_ == LossKind::MeanSquaredError) match_targets_to_outputs(options.get_string("module_path"));

    const std::int64_t train_rows = train_inputs_.size(0);
    sampler_.emplace(train_rows, options.get_int("batch_size"), derive_seed(context.seed, kOrderStream),
                     data_device_, hpt::task_support::Shard{context.rank, context.world_size});
    hpt::task_support::EpochSampler probe_choice(train_rows, options.get_int("batch_size"),
                                                 derive_seed(context.seed, kProbeStream), data_device_);
    probe_ = batch_of(probe_choice.next());
    check_loss_runs(options.get_string("module_path"), data_path);
    model_->train();
  }

  torch::nn::Module& model() override { return *model_; }

  hpt::Batch next_batch() override { return batch_of(sampler_->next()); }

  torch::Tensor loss(const hpt::Batch& batch) override {
    return hpt::task_support::mean_loss(loss_kind_, model_->forward(batch.inputs.at(0)), batch.targets);
  }

  const hpt::Batch& probe_batch() override { return probe_; }

  hpt::Metrics evaluate() override {
    return hpt::task_support::evaluate_in_chunks([this](const torch::Tensor& x) { return model_->forward(x); },
                                                 val_inputs_, val_targets_, kEvalChunk, loss_kind_, device_);
  }

  std::vector<std::string> metric_names() const override {
    if (loss_kind_ == LossKind::CrossEntropy) return {"val_loss", "val_accuracy"};
    return {"val_loss"};
  }

  void save(hpt::StateWriter& state) const override { sampler_->save(state, "order_"); }
  void load(torch::serialize::InputArchive& archive) override { sampler_->load(archive, "order_"); }

 private:
  // Takes the validation rows out of `data`: `fraction` of them, after a permutation
  // seeded by `shuffle_seed` when there is one, else the last rows.
  static hpt::torchscript::TensorData hold_out(hpt::torchscript::TensorData& data, const std::string& path,
                                               double fraction, std::optional<std::uint64_t> shuffle_seed) {
    const std::int64_t rows = data.inputs.size(0);
    const auto held_out = static_cast<std::int64_t>(std::ceil(fraction * static_cast<double>(rows)));
    if (held_out < 1 || held_out >= rows)
      throw hpt::BadInput("data file " + path + " has " + std::to_string(rows) + " rows: val_fraction " +
                          std::to_string(fraction) +
                          " must leave at least one row for training and hold out at least one (or set "
                          "val_data_path to a validation file)");
    if (shuffle_seed) {
      torch::Tensor order = torch::randperm(rows, hpt::make_cpu_generator(*shuffle_seed),
                                            torch::TensorOptions(torch::kInt64));
      data.inputs = data.inputs.index_select(0, order);
      data.targets = data.targets.index_select(0, order);
    }
    hpt::torchscript::TensorData val{data.inputs.narrow(0, rows - held_out, held_out),
                                     data.targets.narrow(0, rows - held_out, held_out)};
    data.inputs = data.inputs.narrow(0, 0, rows - held_out);
    data.targets = data.targets.narrow(0, 0, rows - held_out);
    return val;
  }

  static void check_same_row_shapes(const hpt::torchscript::TensorData& train, const std::string& train_path,
                                    const hpt::torchscript::TensorData& val, const std::string& val_path) {
    auto row = [](const torch::Tensor& t) { return t.sizes().slice(1); };
    if (!row(train.inputs).equals(row(val.inputs)) || !row(train.targets).equals(row(val.targets)))
      throw hpt::BadInput("validation file " + val_path + " has rows of inputs " + shape_of(val.inputs[0]) +
                          " and targets " + shape_of(val.targets[0]) + ", but " + train_path + " has inputs " +
                          shape_of(train.inputs[0]) + " and targets " + shape_of(train.targets[0]));
  }

  torch::Tensor targets_for_loss(const torch::Tensor& targets) const {
    return loss_kind_ == LossKind::CrossEntropy ? targets.to(torch::kInt64) : targets;
  }

  hpt::Batch batch_of(const torch::Tensor& indices) const {
    if (data_device_ == device_)
      return {{train_inputs_.index_select(0, indices)}, train_targets_.index_select(0, indices)};
    // Host data, GPU model: gather the rows into page-locked memory, so that the copy to the
    // device is asynchronous (it queues on the backend's stream, which runs the step after
    // it in order).
    return {{to_device(train_inputs_, indices)}, to_device(train_targets_, indices)};
  }

  torch::Tensor to_device(const torch::Tensor& data, const torch::Tensor& indices) const {
    std::vector<std::int64_t> shape(data.sizes().begin(), data.sizes().end());
    shape[0] = indices.size(0);
    const bool pin = device_.is_cuda();
    torch::Tensor rows = torch::empty(shape, data.options().pinned_memory(pin));
    torch::index_select_out(rows, data, 0, indices);
    return rows.to(device_, /*non_blocking=*/pin);
  }

  // Regression targets take the floating type of the module's outputs.
  void match_targets_to_outputs(const std::string& module_path) {
    torch::NoGradGuard no_grad;
    torch::ScalarType type;
    try {
      type = model_->forward(train_inputs_.narrow(0, 0, 1).to(device_)).scalar_type();
    } catch (const std::exception& e) {
      throw hpt::BadInput("TorchScript module " + module_path + " fails on the data's inputs (rows of shape " +
                          shape_of(train_inputs_[0]) + "): " + e.what());
    }
    train_targets_ = train_targets_.to(type);
    val_targets_ = val_targets_.to(type);
  }

  // A clear error now rather than a stack trace at the first step.
  void check_loss_runs(const std::string& module_path, const std::string& data_path) {
    torch::NoGradGuard no_grad;
    try {
      loss(probe_);
    } catch (const std::exception& e) {
      throw hpt::BadInput("TorchScript module " + module_path + " with the data of " + data_path + " (inputs " +
                          shape_of(train_inputs_) + ", targets " + shape_of(train_targets_) +
                          ") does not give a loss: " + e.what());
    }
  }

  static std::string shape_of(const torch::Tensor& t) {
    std::string out = "[";
    for (std::int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
    return out + "]";
  }

  LossKind loss_kind_;
  hpt::torchscript::ScriptModel model_;
  torch::Device device_;       // the backend's: where the model runs
  torch::Device data_device_;  // where the data set is kept (device_, or the host)
  torch::Tensor train_inputs_, train_targets_, val_inputs_, val_targets_;
  std::optional<hpt::task_support::EpochSampler> sampler_;
  hpt::Batch probe_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "torchscript", "1.0.0", "trains a TorchScript module on tensors from a file",
           TorchScriptTask, TorchScriptTask::option_specs)
