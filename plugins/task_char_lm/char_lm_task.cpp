// Task "char_lm": next-character prediction on a text corpus with a small decoder-only
// transformer (transformer_lm.hpp). The default corpus is every fortune of the Debian
// package fortunes (/usr/share/games/fortunes), read as text_corpus.hpp describes.
//
// The vocabulary is the sorted set of the corpus's bytes. The last `val_fraction` of
// the text is held out. The training text is cut into non-overlapping windows of
// context + 1 characters (inputs: the first `context`, targets: the same shifted by
// one); batches visit the windows shuffled per epoch (task_support/epoch_sampler.hpp).
// The probe batch is a fixed random choice of training windows. Validation uses
// eval_batches x batch_size windows spread evenly over the held-out text and reports
// val_loss (mean cross entropy, nats per character) and val_bpc (bits per character).
#include <cmath>
#include <cstdint>
#include <optional>

#include "task_support/epoch_sampler.hpp"
#include "hpt/hpt.hpp"
#include "task_support/losses.hpp"
#include "task_support/seeding.hpp"
#include "text_corpus.hpp"
#include "transformer_lm.hpp"

namespace {

using hpt::task_support::derive_seed;
using hpt::task_support::LossKind;

// Independent random streams of one run.
enum Stream : std::uint64_t { kOrderStream = 1, kProbeStream = 2, kModelStream = 3 };

const char* const kMissingHint =
    "install the Debian package fortunes, or set the task's `corpus` to a text file or a folder of text files";

// Windows [count, context + 1] of `tokens` (uint8 ids) starting at `starts` (int64), as int64 ids.
torch::Tensor windows_at(const torch::Tensor& tokens, const torch::Tensor& starts, std::int64_t context) {
  torch::Tensor offsets = torch::arange(context + 1, starts.options());
  return tokens.index_select(0, (starts.unsqueeze(1) + offsets).flatten()).view({-1, context + 1}).to(torch::kInt64);
}

hpt::Batch batch_of_windows(const torch::Tensor& windows) {
  const std::int64_t context = windows.size(1) - 1;
  return {{windows.narrow(1, 0, context)}, windows.narrow(1, 1, context)};
}

class CharLmTask : public hpt::Task {
 public:
  static std::vector<hpt::OptionSpec> option_specs() {
    return {
        hpt::option_string("corpus", "/usr/share/games/fortunes",
                           "a text file, or a folder whose files without extension are concatenated"),
        hpt::option_int("layers", 2, "transformer blocks", 1, 64),
        hpt::option_int("width", 64, "embedding width (a multiple of heads)", 1, 8192),
        hpt::option_int("heads", 4, "attention heads", 1, 256),
        hpt::option_int("context", 64, "characters per training window", 1, 8192),
        hpt::option_int("batch_size", 32, "windows per batch", 1, 65536),
        hpt::option_float("val_fraction", 0.1, "fraction of the text held out at its end for validation", 0.001, 0.5),
        hpt::option_int("eval_batches", 8, "validation batches of batch_size windows", 1, 10000),
    };
  }

  CharLmTask(const hpt::PluginContext& context, const hpt::Options& options)
      : context_(options.get_int("context")), batch_size_(options.get_int("batch_size")) {
    const std::string text = hpt::char_lm::read_corpus(options.get_string("corpus"), kMissingHint);
    const hpt::char_lm::ByteVocabulary vocabulary(text);
    const auto total = static_cast<std::int64_t>(text.size());
    const auto held_out = static_cast<std::int64_t>(std::ceil(options.get_float("val_fraction") * total));
    const std::int64_t train_windows = (total - held_out - 1) / context_;
    const std::int64_t val_windows = (held_out - 1) / context_;
    if (train_windows < 1 || val_windows < 1)
      throw hpt::BadInput("corpus " + options.get_string("corpus") + " has " + std::to_string(total) +
                          " characters: too few for windows of context " + std::to_string(context_) +
                          " + 1 in both its training part and its held-out " +
                          std::to_string(options.get_float("val_fraction")));
    torch::Tensor tokens = vocabulary.encode(text).to(context.device);
    train_tokens_ = tokens.narrow(0, 0, total - held_out);
    sampler_.emplace(train_windows, batch_size_, derive_seed(context.seed, kOrderStream), context.device,
                     hpt::task_support::Shard{context.rank, context.world_size});

    hpt::task_support::EpochSampler probe_choice(train_windows, batch_size_, derive_seed(context.seed, kProbeStream),
                                                 context.device);
    probe_ = batch_of_windows(windows_at(train_tokens_, probe_choice.next() * context_, context_));

    const std::int64_t eval_windows = std::min(val_windows, options.get_int("eval_batches") * batch_size_);
    auto spread = torch::arange(eval_windows, torch::TensorOptions(torch::kInt64).device(context.device));
    torch::Tensor val = windows_at(tokens.narrow(0, total - held_out, held_out),
                                   (spread * val_windows).div(eval_windows, "floor") * context_, context_);
    val_inputs_ = val.narrow(1, 0, context_);
    val_targets_ = val.narrow(1, 1, context_);

    {
      hpt::task_support::ScopedTorchSeed seeded(derive_seed(context.seed, kModelStream));
      model_ = hpt::char_lm::TransformerLm(vocabulary.size(), context_, options.get_int("layers"),
                                           options.get_int("width"), options.get_int("heads"));
    }
    model_->to(context.device);
  }

  torch::nn::Module& model() override { return *model_; }

  hpt::Batch next_batch() override {
    return batch_of_windows(windows_at(train_tokens_, sampler_->next() * context_, context_));
  }

  torch::Tensor loss(const hpt::Batch& batch) override {
    return hpt::task_support::mean_loss(LossKind::CrossEntropy, model_->forward(batch.inputs.at(0)), batch.targets);
  }

  const hpt::Batch& probe_batch() override { return probe_; }

  hpt::Metrics evaluate() override {
    hpt::Metrics m = hpt::task_support::evaluate_in_chunks(
        [this](const torch::Tensor& tokens) { return model_->forward(tokens); }, val_inputs_, val_targets_,
        batch_size_, LossKind::CrossEntropy);
    return {{"val_loss", m.at("val_loss")}, {"val_bpc", m.at("val_loss") / std::log(2.0)}};
  }

  std::vector<std::string> metric_names() const override { return {"val_loss", "val_bpc"}; }

  void save(hpt::StateWriter& state) const override { sampler_->save(state, "order_"); }
  void load(torch::serialize::InputArchive& archive) override { sampler_->load(archive, "order_"); }

 private:
  std::int64_t context_;
  std::int64_t batch_size_;
  torch::Tensor train_tokens_;                                // uint8 ids of the training text
  std::optional<hpt::task_support::EpochSampler> sampler_;    // over training windows
  hpt::Batch probe_;
  torch::Tensor val_inputs_, val_targets_;                    // int64 [eval windows, context]
  hpt::char_lm::TransformerLm model_{nullptr};
};

}  // namespace

HPT_PLUGIN(hpt::PluginKind::Task, "char_lm", "1.0.0",
           "character-level language model: a small transformer on a text corpus (default: Debian fortunes)",
           CharLmTask, CharLmTask::option_specs)
