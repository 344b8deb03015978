// Task "fashion_mnist": 10-class classification of Fashion-MNIST's 28x28 grey images,
// read from the IDX files of the Debian package dataset-fashion-mnist (idx_file.hpp).
//
// The images stay in memory as uint8 tensors on the task's device; a batch is an
// index_select of them, normalised as (x / 255 - 0.2860) / 0.3530 (the training set's
// mean and standard deviation), shape [N, 1, 28, 28]. The model is an MLP
// (task_support/mlp.hpp, `hidden`) or NiNo's small CNN (small_cnn.hpp, `channels`),
// trained with cross entropy. Batches are shuffled per epoch (task_support/
// epoch_sampler.hpp); the probe batch is a fixed random subset of `probe_size`
// training images. Validation runs on the 10,000 test images in chunks of 2,000.
//
// Curriculum: an example's difficulty is the current model's cross entropy on it
// (chunks of 2,000); a restriction narrows the epoch sampler to the pool, saved with its
// position. Every rank's data is the whole training set (ranks split each batch), so
// every rank scores and restricts alike.
#include <cstdint>

#include <torch/nn/modules/container/any.h>

#include "task_support/epoch_sampler.hpp"
#include "hpt/hpt.hpp"
#include "idx_file.hpp"
#include "task_support/losses.hpp"
#include "task_support/mlp.hpp"
#include "task_support/seeding.hpp"
#include "small_cnn.hpp"

namespace {

using hpt::task_support::derive_seed;
using hpt::task_support::LossKind;

constexpr double kPixelMean = 0.2860;
constexpr double kPixelStd = 0.3530;
constexpr std::int64_t kClasses = 10;
constexpr std::int64_t kEvalChunk = 2000;
const char* const kMissingHint = "install the Debian package dataset-fashion-mnist";

// Independent random streams of one run.
enum Stream : std::uint64_t { kOrderStream = 1, kProbeStream = 2, kModelStream = 3 };

// Images [N, 28, 28] and labels [N] of one split, the first `limit` of them (0: all).
struct Split {
  torch::Tensor images;  // uint8
  torch::Tensor labels;  // int64

  static Split read(const std::string& dir, const std::string& prefix, std::int64_t limit, torch::Device device) {
    Split split;
    std::string images_path = dir + "/" + prefix + "-images-idx3-ubyte.gz";
    std::string labels_path = dir + "/" + prefix + "-labels-idx1-ubyte.gz";
    split.images = hpt::data::read_idx(images_path, kMissingHint);
    split.labels = hpt::data::read_idx(labels_path, kMissingHint).to(torch::kInt64);
    if (split.images.dim() != 3 || split.labels.dim() != 1 || split.images.size(0) != split.labels.size(0))
      throw hpt::BadInput(images_path + " and " + labels_path + " do not hold images [N, H, W] and N labels");
    if (limit > 0 && limit < split.images.size(0)) {
      split.images = split.images.narrow(0, 0, limit);
      split.labels = split.labels.narrow(0, 0, limit);
    }
    split.images = split.images.contiguous().to(device);
    split.labels = split.labels.contiguous().to(device);
    return split;
  }

  std::int64_t size() const { return images.size(0); }
};

// uint8 images [N, H, W] -> normalised float [N, 1, H, W].
torch::Tensor normalise(const torch::Tensor& images) {
  return ((images.to(torch::kFloat32) / 255.0 - kPixelMean) / kPixelStd).unsqueeze(1);
}

class FashionMnistTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_path("data_dir", "/usr/share/datasets/fashion-mnist",
                         "folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz"),
        hpt::option_string("model", "cnn", "mlp (hidden) or NiNo's small cnn (channels)", {"mlp", "cnn"}),
        hpt::option_int_list("hidden", {256, 256}, "mlp: hidden layer widths", 1, 65536),
        hpt::option_int_list("channels", {16, 32, 32}, "cnn: channels of each 3x3 convolution (FM-16: 16,32,32)", 1,
                             4096),
        hpt::option_int("batch_size", 128, "training images per batch", 1, 60000),
        hpt::option_int("probe_size", 512, "training images in the fixed probe batch", 1, 60000),
        hpt::option_int("train_limit", 0, "use only the first N training images (0: all 60,000)", 0, 60000),
        hpt::option_int("eval_limit", 0, "validate on only the first N test images (0: all 10,000)", 0, 10000),
    };
  }

  FashionMnistTask(const hpt::PluginContext& context, const hpt::Options& options)
      : train_(Split::read(options.get_string("data_dir"), "train", options.get_int("train_limit"), context.device)),
        val_(Split::read(options.get_string("data_dir"), "t10k", options.get_int("eval_limit"), context.device)),
        sampler_(train_.size(), options.get_int("batch_size"), derive_seed(context.seed, kOrderStream),
                 context.device, {context.rank, context.world_size}) {
    hpt::task_support::EpochSampler probe_choice(train_.size(), options.get_int("probe_size"),
                                                 derive_seed(context.seed, kProbeStream), context.device);
    probe_ = batch_of(probe_choice.next());
    {
      hpt::task_support::ScopedTorchSeed seeded(derive_seed(context.seed, kModelStream));
      if (options.get_string("model") == "cnn")
        model_ = torch::nn::AnyModule(hpt::fashion_mnist::SmallCnn(1, options.get_int_list("channels"), kClasses));
      else
        model_ = torch::nn::AnyModule(hpt::task_support::Mlp(train_.images.size(1) * train_.images.size(2),
                                                             options.get_int_list("hidden"), kClasses));
    }
    model_.ptr()->to(context.device);
  }

  torch::nn::Module& model() override { return *model_.ptr(); }

  hpt::Batch next_batch() override { return batch_of(sampler_.next()); }

  torch::Tensor loss(const hpt::Batch& batch) override {
    return hpt::task_support::mean_loss(LossKind::CrossEntropy, forward(batch.inputs.at(0)), batch.targets);
  }

  const hpt::Batch& probe_batch() override { return probe_; }

  hpt::Metrics evaluate() override {
    return hpt::task_support::evaluate_in_chunks(
        [this](const torch::Tensor& images) { return forward(normalise(images)); }, val_.images, val_.labels,
        kEvalChunk, LossKind::CrossEntropy);
  }

  std::vector<std::string> metric_names() const override { return {"val_loss", "val_accuracy"}; }

  bool can_score_examples() const override { return true; }

  torch::Tensor score_examples() override {
    return hpt::task_support::per_example_losses(
        [this](const torch::Tensor& images) { return forward(normalise(images)); }, train_.images, train_.labels,
        kEvalChunk, LossKind::CrossEntropy);
  }

  void restrict_examples(const torch::Tensor& examples) override { sampler_.restrict_to(examples); }

  void save(hpt::StateWriter& state) const override { sampler_.save(state, "order_"); }
  void load(torch::serialize::InputArchive& archive) override { sampler_.load(archive, "order_"); }

 private:
  hpt::Batch batch_of(const torch::Tensor& indices) const {
    return {{normalise(train_.images.index_select(0, indices))}, train_.labels.index_select(0, indices)};
  }

  torch::Tensor forward(const torch::Tensor& x) { return model_.forward(x); }

  Split train_;
  Split val_;
  hpt::task_support::EpochSampler sampler_;
  torch::nn::AnyModule model_;  // a SmallCnn or an Mlp
  hpt::Batch probe_;
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "fashion_mnist", "1.0.0",
           "Fashion-MNIST classification (Debian dataset-fashion-mnist) with an MLP or NiNo's small CNN",
           FashionMnistTask, FashionMnistTask::option_specs)
