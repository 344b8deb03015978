// Task "synthetic": a tiny teacher-student problem generated from the run seed, for
// tests and quick experiments (milliseconds per step, no files).
//
// Inputs are standard normal vectors; a random linear teacher W (inputs x outputs,
// entries N(0, 1/inputs)) gives the targets: x W plus Gaussian noise for regression
// (mean squared error), argmax(x W + noise) for classification (cross entropy over
// `outputs` classes). The student is an MLP (task_support/mlp.hpp). Batches are
// shuffled per epoch; batch_size = 0 makes every batch the whole training set in a
// fixed order (full_batch(), for L-BFGS). The probe batch is the whole training set.
//
// Curriculum: an example's difficulty is the current model's loss on it; a restriction
// narrows the epoch sampler to the pool (task_support/epoch_sampler.hpp), saved with its
// position. Every rank's data is the whole training set (ranks split each batch), so
// every rank scores and restricts alike.
#include <cmath>
#include <cstdint>

#include "hpt/torch_compat.hpp"

#include "task_support/epoch_sampler.hpp"
#include "hpt/hpt.hpp"
#include "task_support/losses.hpp"
#include "task_support/mlp.hpp"
#include "task_support/seeding.hpp"

namespace {

using hpt::task_support::EpochSampler;
using hpt::task_support::LossKind;

// Independent random streams of one run.
enum Stream : std::uint64_t { kDataStream = 1, kOrderStream = 2, kModelStream = 3 };

class SyntheticTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_string("kind", "regression", "regression (mean squared error) or classification (cross entropy)",
                           {"regression", "classification"}),
        hpt::option_int("inputs", 8, "input features", 1, 4096),
        hpt::option_int("outputs", 4, "regression: target dimensions; classification: classes", 1, 4096),
        hpt::option_int("samples", 512, "training samples", 1, 10000000),
        hpt::option_int("val_samples", 256, "validation samples", 1, 10000000),
        hpt::option_int_list("hidden", {16}, "hidden layer widths of the MLP (empty: a linear model)", 1, 65536),
        hpt::option_int("batch_size", 32, "samples per batch (0: the whole training set, full batch)", 0, 10000000),
        hpt::option_float("noise", 0.05, "std of the Gaussian noise added to the teacher's outputs", 0.0, 100.0),
    };
  }

  SyntheticTask(const hpt::PluginContext& context, const hpt::Options& options)
      : loss_kind_(options.get_string("kind") == "classification" ? LossKind::CrossEntropy
                                                                  : LossKind::MeanSquaredError),
        full_batch_(options.get_int("batch_size") == 0),
        sampler_(options.get_int("samples"),
                 full_batch_ ? options.get_int("samples") / context.world_size : options.get_int("batch_size"),
                 hpt::task_support::derive_seed(context.seed, kOrderStream), context.device,
                 {context.rank, context.world_size}) {
    const std::int64_t inputs = options.get_int("inputs");
    const std::int64_t outputs = options.get_int("outputs");
    if (loss_kind_ == LossKind::CrossEntropy && outputs < 2)
      throw hpt::BadInput("task synthetic: classification needs outputs >= 2 classes, got " +
                          std::to_string(outputs));
    generate_data(options, hpt::task_support::derive_seed(context.seed, kDataStream), context.device);
    {
      hpt::task_support::ScopedTorchSeed seeded(hpt::task_support::derive_seed(context.seed, kModelStream));
      model_ = hpt::task_support::Mlp(inputs, options.get_int_list("hidden"), outputs);
    }
    model_->to(context.device);
    probe_ = {{train_inputs_}, train_targets_};
  }

  torch::nn::Module& model() override { return *model_; }

  hpt::Batch next_batch() override {
    if (full_batch_) return probe_;
    torch::Tensor indices = sampler_.next();
    return {{train_inputs_.index_select(0, indices)}, train_targets_.index_select(0, indices)};
  }

  torch::Tensor loss(const hpt::Batch& batch) override {
    return hpt::task_support::mean_loss(loss_kind_, model_->forward(batch.inputs.at(0)), batch.targets);
  }

  const hpt::Batch& probe_batch() override { return probe_; }

  hpt::Metrics evaluate() override {
    return hpt::task_support::evaluate_in_chunks([this](const torch::Tensor& x) { return model_->forward(x); },
                                                 val_inputs_, val_targets_, 4096, loss_kind_);
  }

  std::vector<std::string> metric_names() const override {
    if (loss_kind_ == LossKind::CrossEntropy) return {"val_loss", "val_accuracy"};
    return {"val_loss"};
  }

  bool full_batch() const override { return full_batch_; }

  bool can_score_examples() const override { return true; }

  torch::Tensor score_examples() override {
    return hpt::task_support::per_example_losses([this](const torch::Tensor& x) { return model_->forward(x); },
                                                 train_inputs_, train_targets_, 4096, loss_kind_);
  }

  void restrict_examples(const torch::Tensor& examples) override {
    if (full_batch_)
      throw hpt::BadInput("task synthetic: batch_size = 0 makes every batch the whole training set, which a "
                          "curriculum cannot narrow: set task.batch_size for mini-batches");
    sampler_.restrict_to(examples);
  }

  void save(hpt::StateWriter& state) const override { sampler_.save(state, "order_"); }
  void load(torch::serialize::InputArchive& archive) override { sampler_.load(archive, "order_"); }

 private:
  void generate_data(const hpt::Options& options, std::uint64_t seed, torch::Device device) {
    const std::int64_t inputs = options.get_int("inputs");
    const std::int64_t outputs = options.get_int("outputs");
    const double noise = options.get_float("noise");
    auto generator = hpt::make_cpu_generator(seed);
    torch::Tensor teacher = torch::randn({inputs, outputs}, generator) / std::sqrt(static_cast<double>(inputs));
    auto make = [&](std::int64_t samples, torch::Tensor& x, torch::Tensor& y) {
      x = torch::randn({samples, inputs}, generator);
      torch::Tensor clean = x.matmul(teacher);
      torch::Tensor noisy = clean + noise * torch::randn(clean.sizes(), generator);
      y = loss_kind_ == LossKind::CrossEntropy ? noisy.argmax(1) : noisy;
      x = x.to(device);
      y = y.to(device);
    };
    make(options.get_int("samples"), train_inputs_, train_targets_);
    make(options.get_int("val_samples"), val_inputs_, val_targets_);
  }

  LossKind loss_kind_;
  bool full_batch_;
  EpochSampler sampler_;
  torch::Tensor train_inputs_, train_targets_, val_inputs_, val_targets_;
  hpt::task_support::Mlp model_{nullptr};
  hpt::Batch probe_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "synthetic", "1.0.0", "a seeded teacher-student regression or classification",
           SyntheticTask, SyntheticTask::option_specs)
